"""Does mirroring with swapped left/right pairs help? (issue: beyond the paper, 4)

Synthetic "heads" (64³, 1 mm): a bright ellipsoid with two identical "eyes" placed mirror-symmetrically about the
head's mid-plane (with jitter), a dark "nose" on the mid-plane and a "chin" below it. Two CPU trainings of
nnLandmarkTrainer_CPU on fold 0 of the same data: without ``mirror_pairs`` (the paper: no mirroring) and with
``"mirror_pairs": [["left_eye", "right_eye"]]`` (mirroring along left-right, pairs swapped, mirrored test-time
prediction). MRE on held-out cases, and how often an eye lands on the other eye (left/right confusion).

    python benchmarks/mirror_pairs.py [--workdir DIR] [--out FILE]      (about 20 CPU minutes)
"""
import json
from pathlib import Path

import numpy as np

from nnlandmark.io.predictions import read_landmark_table
from nnlandmark.landmark_set import LANDMARKS_WORLD_JSON

from _common import (benchmark_parser, default_out, edit_json, markdown_table, nnunet_env, plan_cpu,
                     predict_test_cases, scene_dataset, train_cpu, training_env, write_json)
from _scenes import HEAD_ORIGIN, head, write_scans

DATASET = 982
TRAINER = "nnLandmarkTrainer_CPU"


def prepare(workdir: Path, env: dict) -> Path:
    """32 heads (the first 24 for training), written as a raw dataset that declares the eyes a mirror pair."""
    images = workdir / "images"
    truth = write_scans(images, 32, head, np.random.default_rng(7), "head", origin=HEAD_ORIGIN)
    raw = scene_dataset(env, DATASET, "Heads", images, truth, 24,
                        dataset_json_extra={"mirror_pairs": [["left_eye", "right_eye"]]})
    plan_cpu(env, DATASET)
    return raw


def train_and_test(env: dict, raw: Path, workdir: Path, label: str) -> dict:
    train_cpu(env, raw, TRAINER)
    predictions = workdir / f"predictions_{label}"
    summary = predict_test_cases(env, raw, TRAINER, predictions)
    truth = read_landmark_table(raw / LANDMARKS_WORLD_JSON)[1]
    swapped = 0
    for file in predictions.glob("head_*.json"):
        pred = json.loads(file.read_text())["landmarks"]
        gt = truth[file.stem]
        for eye, other in (("left_eye", "right_eye"), ("right_eye", "left_eye")):
            p = np.array(pred[eye]["world"])
            swapped += np.linalg.norm(p - gt[other]) < np.linalg.norm(p - gt[eye])
    per = summary["per_landmark"]
    return {"run": label, "mre_mm": summary["mre_mm"], "eyes_mre_mm": (per["left_eye"]["mre_mm"] +
                                                                        per["right_eye"]["mre_mm"]) / 2,
            "eyes_on_the_wrong_side": int(swapped), "eyes_total": 2 * summary["n_cases"],
            "sdr_2mm": summary["sdr"]["2.0"]}


def main():
    args = benchmark_parser(__doc__, out=default_out(__file__), workdir="mirror_pairs_benchmark").parse_args()
    workdir = Path(args.workdir).resolve()
    env = nnunet_env(workdir)
    raw = prepare(workdir, env)
    rows = [train_and_test(training_env(env), raw, workdir, "mirror_pairs")]
    edit_json(Path(env["nnUNet_preprocessed"]) / raw.name / "dataset.json", lambda info: info.pop("mirror_pairs"))
    rows.append(train_and_test(training_env(env, workdir / "results_no_mirroring"), raw, workdir,
                               "no_mirroring (paper)"))
    print(markdown_table(["run", "MRE (mm)", "eyes MRE (mm)", "eyes on the wrong side", "SDR@2mm (%)"],
                         [[r["run"], f"{r['mre_mm']:.2f}", f"{r['eyes_mre_mm']:.2f}",
                           f"{r['eyes_on_the_wrong_side']}/{r['eyes_total']}", f"{r['sdr_2mm']:.1f}"] for r in rows]))
    write_json(args.out, rows)


if __name__ == "__main__":
    main()
