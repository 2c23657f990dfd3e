"""Absent and unannotated landmarks on CPU: what masking and calibrated thresholds buy (issue: beyond the paper, 2).

One synthetic set (spheres, 64³, 1 mm) with two kinds of missing landmarks:
- ``medium_sphere`` is truly absent (not in the image) in ~30 % of cases and declared ``landmarks_may_be_absent``;
- ``small_sphere`` is in every image but its cube is deleted from 40 % of the training label maps (unannotated).
Run "masked" (nnlandmark: unannotated pairs left out of the loss) vs "paper" (every missing cube trained as
"nothing here", i.e. small_sphere declared may-be-absent too), each nnLandmarkTrainer_CPU on fold 0, thresholds
calibrated on fold 0's validation cases, evaluated on the held-out test cases.

    python benchmarks/absent_landmarks.py [--workdir DIR] [--out FILE]      (about 20 CPU minutes)
"""
import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from nnlandmark.paths import CPU_PLANS

from _common import (benchmark_parser, default_out, edit_json, markdown_table, nnunet_env, plan_cpu,
                     predict_test_cases, run_command, spheres, train_cpu, training_env, write_json)

DATASET = 981
TRAINER = "nnLandmarkTrainer_CPU"


def prepare(env: dict) -> Path:
    raw = spheres(env, DATASET, "Absent", n_train=30, n_test=10, seed=5, absent_fraction={"medium_sphere": 0.3})
    rng = np.random.default_rng(0)
    for label_file in sorted((raw / "labelsTr").glob("*.nii.gz")):
        if rng.uniform() < 0.4:  # unannotate the small sphere: the sphere stays in the image
            image = sitk.ReadImage(str(label_file))
            seg = sitk.GetArrayFromImage(image)
            seg[seg == 1] = 0
            out = sitk.GetImageFromArray(seg)
            out.CopyInformation(image)
            sitk.WriteImage(out, str(label_file))
    plan_cpu(env, DATASET)
    return raw


def train_and_test(env: dict, raw: Path, workdir: Path, label: str) -> dict:
    train_cpu(env, raw, TRAINER)
    run_command(env, "nnLandmark_calibrate", "-d", DATASET, "-tr", TRAINER, "-p", CPU_PLANS)
    predictions = workdir / f"predictions_{label}"
    summary = predict_test_cases(env, raw, TRAINER, predictions)
    likelihood = [json.loads(p.read_text())["landmarks"]["small_sphere"]["likelihood"]
                  for p in predictions.glob("sphere_*.json")]
    medium = summary["detection"]["per_landmark"]["medium_sphere"]
    return {"run": label, "mre_mm": summary["mre_mm"],
            "small_mre_mm": summary["per_landmark"]["small_sphere"]["mre_mm"],
            "small_n": summary["per_landmark"]["small_sphere"]["n"],
            "small_likelihood_mean": float(np.mean(likelihood)),
            "medium_precision": medium["precision"], "medium_recall": medium["recall"],
            "medium_tp_fp_fn_tn": [medium["tp"], medium["fp"], medium["fn"], medium["tn"]]}


def every_missing_cube_is_absent(info: dict) -> None:
    info["landmarks_may_be_absent"] = ["small_sphere", "medium_sphere"]  # missing cube = "nothing here"


def main():
    args = benchmark_parser(__doc__, out=default_out(__file__), workdir="absent_landmarks_benchmark").parse_args()
    workdir = Path(args.workdir).resolve()
    env = nnunet_env(workdir)
    raw = prepare(env)
    rows = [train_and_test(training_env(env), raw, workdir, "masked")]
    for info_file in (Path(env["nnUNet_preprocessed"]) / raw.name / "dataset.json", raw / "dataset.json"):
        edit_json(info_file, every_missing_cube_is_absent)
    rows.append(train_and_test(training_env(env, workdir / "results_paper"), raw, workdir, "paper"))
    print(markdown_table(["run", "MRE all (mm)", "small MRE (mm)", "small likelihood", "medium precision",
                          "medium recall"],
                         [[r["run"], f"{r['mre_mm']:.2f}", f"{r['small_mre_mm']:.2f}",
                           f"{r['small_likelihood_mean']:.3f}", f"{r['medium_precision']:.2f}",
                           f"{r['medium_recall']:.2f}"] for r in rows]))
    write_json(args.out, rows)


if __name__ == "__main__":
    main()
