"""Does mirroring with swapped left/right pairs help? (issue: beyond the paper, 4)

Synthetic "heads" (64³, 1 mm): a bright ellipsoid with two identical "eyes" placed mirror-symmetrically about the
head's mid-plane (with jitter), a dark "nose" on the mid-plane and a "chin" below it. Two CPU trainings of
nnLandmarkTrainer_CPU on fold 0 of the same data: without ``mirror_pairs`` (the paper: no mirroring) and with
``"mirror_pairs": [["left_eye", "right_eye"]]`` (mirroring along left-right, pairs swapped, mirrored test-time
prediction). MRE on held-out cases, and how often an eye lands on the other eye (left/right confusion).

    python benchmarks/mirror_pairs.py [--workdir DIR] [--out FILE]      (about 20 CPU minutes)
"""
import argparse
import json
import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from _common import predict_test_cases, run_command, train_cpu

DATASET = 982
SIZE = 64


def make_case(rng, path: Path) -> dict:
    """One head; returns landmark positions as continuous ITK index (x = patient left-right)."""
    centre = np.array([SIZE / 2, SIZE / 2, SIZE / 2]) + rng.uniform(-4, 4, 3)
    half_width = rng.uniform(9, 13)  # eye distance from the mid-plane
    eye_y, eye_z = centre[1] + rng.uniform(6, 10), centre[2] + rng.uniform(2, 6)
    points = {"left_eye": np.array([centre[0] + half_width, eye_y, eye_z]) + rng.normal(0, 0.7, 3),
              "right_eye": np.array([centre[0] - half_width, eye_y, eye_z]) + rng.normal(0, 0.7, 3),
              "nose": np.array([centre[0], centre[1] + rng.uniform(12, 15), centre[2] - rng.uniform(0, 3)]),
              "chin": np.array([centre[0], centre[1] + rng.uniform(8, 12), centre[2] - rng.uniform(12, 16)])}
    xyz = np.stack(np.meshgrid(*[np.arange(SIZE)] * 3, indexing="ij"), -1)[..., ::-1]
    head = np.linalg.norm((xyz - centre) / [22, 20, 24], axis=-1) <= 1
    image = ndimage.gaussian_filter(rng.normal(0, 1, (SIZE,) * 3), 3) * 2 + 1.5 * head
    for name, radius, value in (("left_eye", 3, 2.0), ("right_eye", 3, 2.0), ("nose", 3.5, -2.0), ("chin", 4, 1.2)):
        image += value * (np.linalg.norm(xyz - points[name], axis=-1) <= radius)
    itk = sitk.GetImageFromArray((image + rng.normal(0, 0.2, image.shape)).astype(np.float32))
    itk.SetOrigin((-32.0, -32.0, -32.0))
    sitk.WriteImage(itk, str(path))
    return points


def prepare(workdir: Path, env: dict) -> Path:
    from nnlandmark.dataset_conversion.dataset_writer import CaseSource, write_landmark_dataset
    rng = np.random.default_rng(7)
    images = workdir / "images"
    images.mkdir(parents=True, exist_ok=True)
    cases = [CaseSource(f"head_{i:03d}", [str(images / f"head_{i:03d}.nii.gz")], {}, "voxel", f"head_{i:03d}")
             for i in range(32)]
    for case in cases:
        case.landmarks = make_case(rng, Path(case.images[0]))
    raw = write_landmark_dataset(cases, env["nnUNet_raw"], DATASET, "Heads", test_cases=[c.case for c in cases[24:]],
                                 overwrite=True, dataset_json_extra={"mirror_pairs": [["left_eye", "right_eye"]]})
    run_command(env, "nnLandmark_plan_and_preprocess", "-d", DATASET, "--cpu_plans")
    return Path(raw)


def train_and_test(env: dict, raw: Path, workdir: Path, label: str) -> dict:
    train_cpu(env, raw, "nnLandmarkTrainer_CPU")
    predictions = workdir / f"predictions_{label}"
    summary = predict_test_cases(env, raw, "nnLandmarkTrainer_CPU", predictions)
    truth = json.loads((raw / "all_landmarks_world.json").read_text())
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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="mirror_pairs_benchmark")
    parser.add_argument("--out", default="benchmarks/results/mirror_pairs.json")
    args = parser.parse_args()
    workdir = Path(args.workdir).resolve()
    env = {**os.environ, **{v: str(workdir / v) for v in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}}
    raw = prepare(workdir, env)
    train_env = {**env, "nnUNet_n_proc_DA": "1"}
    rows = [train_and_test(train_env, raw, workdir, "mirror_pairs")]
    info_file = Path(env["nnUNet_preprocessed"]) / raw.name / "dataset.json"
    info = json.loads(info_file.read_text())
    info.pop("mirror_pairs")
    info_file.write_text(json.dumps(info))
    rows.append(train_and_test({**train_env, "nnUNet_results": str(workdir / "results_no_mirroring")}, raw, workdir,
                               "no_mirroring (paper)"))
    print("| run | MRE (mm) | eyes MRE (mm) | eyes on the wrong side | SDR@2mm (%) |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['run']} | {r['mre_mm']:.2f} | {r['eyes_mre_mm']:.2f} | {r['eyes_on_the_wrong_side']}/"
              f"{r['eyes_total']} | {r['sdr_2mm']:.1f} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
