"""Cones across the patch border: does a label margin around each training patch help? (issue: beyond the paper, 6)

The paper builds heatmap targets from the label patch alone, so a landmark just outside the patch casts no cone into
it and the network is taught "nothing here" near patch borders. ``nnLandmarkTrainer_CPU_Margin8`` loads patches 8
voxels larger on each side, builds the targets on all of it and trains the network on the central patch (the cone of
a landmark up to 8 voxels outside reaches in with value up to 1 - d/15). Same data (the demo's spheres, 64³, patch
32³ of the CPU plans, so most patches see only part of the landmarks), same split, two CPU trainings; MRE on
held-out cases, and seconds per epoch (the margin makes nnU-Net's augmentation work on 48³ instead of 32³).

    python benchmarks/patch_margin.py [--workdir DIR] [--out FILE] [--margin-trainer nnLandmarkTrainer_CPU_Margin8]
                                                                                       (about 25 CPU minutes)
"""
import argparse
import json
import os
import shutil
from pathlib import Path

import numpy as np
import torch

from _common import markdown_table, run_command, write_json

DATASET = 985


def train_and_test(env: dict, raw: Path, trainer: str, workdir: Path) -> dict:
    model = ["-d", DATASET, "-tr", trainer, "-p", "nnLandmarkCPUPlans"]
    run_command(env, "nnLandmark_train", DATASET, "3d_fullres", 0, "-tr", trainer, "-p", "nnLandmarkCPUPlans",
                "-device", "cpu")
    predictions = workdir / f"predictions_{trainer}"
    run_command(env, "nnLandmark_predict", "-i", raw / "imagesTs", "-o", predictions, *model, "-device", "cpu",
                "--disable_tqdm")
    run_command(env, "nnLandmark_evaluate", "-pred", predictions, "-gt", raw / "all_landmarks_world.json")
    summary = json.loads((predictions / "evaluation" / "summary.json").read_text())
    folder = Path(env["nnUNet_results"]) / raw.name / f"{trainer}__nnLandmarkCPUPlans__3d_fullres" / "fold_0"
    logging = torch.load(folder / "checkpoint_final.pth", map_location="cpu", weights_only=False)["logging"]
    epoch_s = np.subtract(logging["epoch_end_timestamps"], logging["epoch_start_timestamps"])
    return {"trainer": trainer, "mre_mm": summary["mre_mm"], "std_mm": summary["std_mm"],
            "sdr_2mm": summary["sdr"]["2.0"], "per_landmark": {n: v["mre_mm"] for n, v in
                                                               summary["per_landmark"].items()},
            "median_epoch_s": float(np.median(epoch_s)), "n_cases": summary["n_cases"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="patch_margin_benchmark")
    parser.add_argument("--out", default="benchmarks/results/patch_margin.json")
    parser.add_argument("--trainer", default="nnLandmarkTrainer_CPU")
    parser.add_argument("--margin-trainer", default="nnLandmarkTrainer_CPU_Margin8")
    args = parser.parse_args()
    from nnlandmark.dataset_conversion.synthetic import make_synthetic_dataset
    workdir = Path(args.workdir).resolve()
    shutil.rmtree(workdir, ignore_errors=True)
    env = {**os.environ, **{v: str(workdir / v) for v in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}}
    raw = Path(make_synthetic_dataset(env["nnUNet_raw"], DATASET, "Margin", n_train=24, n_test=10, seed=21))
    run_command(env, "nnLandmark_plan_and_preprocess", "-d", DATASET, "--cpu_plans")
    rows = [train_and_test({**env, "nnUNet_n_proc_DA": "1"}, raw, trainer, workdir)
            for trainer in (args.trainer, args.margin_trainer)]
    names = list(rows[0]["per_landmark"])
    print(markdown_table(["trainer", "MRE (mm)", "std (mm)", "SDR@2mm (%)"] + [f"{n} (mm)" for n in names] +
                         ["median epoch (s)"],
                         [[r["trainer"], f"{r['mre_mm']:.3f}", f"{r['std_mm']:.3f}", f"{r['sdr_2mm']:.1f}"] +
                          [f"{r['per_landmark'][n]:.3f}" for n in names] + [f"{r['median_epoch_s']:.1f}"]
                          for r in rows]))
    write_json(args.out, {"rows": rows})


if __name__ == "__main__":
    main()
