"""Cones across the patch border: does a label margin around each training patch help? (issue: beyond the paper, 6)

The paper builds heatmap targets from the label patch alone, so a landmark just outside the patch casts no cone into
it and the network is taught "nothing here" near patch borders. ``nnLandmarkTrainer_CPU_Margin8`` loads patches 8
voxels larger on each side, builds the targets on all of it and trains the network on the central patch (the cone of
a landmark up to 8 voxels outside reaches in with value up to 1 - d/15). Same data (the demo's spheres, 64³, patch
32³ of the CPU plans, so most patches see only part of the landmarks), same split, two CPU trainings; MRE on
held-out cases, and seconds per epoch (the margin makes nnU-Net's augmentation work on 48³ instead of 32³).
First, without training: in nnU-Net's own augmented batches, how many (sample, landmark) pairs lie outside the patch
but cast a cone into it, and how much of the target the patch-only heatmaps miss.

    python benchmarks/patch_margin.py [--workdir DIR] [--out FILE] [--margin-trainer nnLandmarkTrainer_CPU_Margin8]
                                                                                       (about 25 CPU minutes)
    python benchmarks/patch_margin.py --statistics-only                                (about a minute)
"""
import os
import shutil
from pathlib import Path

import numpy as np
import torch

from nnlandmark.paths import CPU_PLANS

from _common import (NNUNET_FOLDERS, benchmark_parser, default_out, epoch_seconds, markdown_table, nnunet_env,
                     plan_cpu, predict_test_cases, spheres, train_cpu, training_env, write_json)

DATASET = 985


def missed_cones(env: dict, batches: int = 40) -> dict:
    """How much target the paper's patch-only heatmaps miss: nnU-Net's own augmented training batches, loaded with a
    15-voxel margin (the heatmap radius, so nothing is missed), targets built on all of it and cropped to the patch,
    against targets built from the label patch alone."""
    from nnlandmark.heatmaps import centre_crop, heatmap_targets
    from nnlandmark.trainers.run import build_trainer
    os.environ.update({**env, "nnUNet_n_proc_DA": "0"})
    trainer = build_trainer(DATASET, "3d_fullres", 0, "nnLandmarkTrainer_CPU_Margin15", CPU_PLANS, False,
                            torch.device("cpu"))  # the TargetMargin mixin: loads patches with a 15-voxel margin
    trainer.initialize()
    loader, _ = trainer.get_dataloaders()
    patch = trainer.configuration_manager.patch_size
    radius = trainer.cone_radius()
    outside = reaching = pairs = 0
    missed, total = 0.0, 0.0
    for _ in range(batches):
        seg = next(loader)["target"]
        full = centre_crop(heatmap_targets(seg, trainer.num_landmarks, radius), patch)
        paper = heatmap_targets(centre_crop(seg, patch), trainer.num_landmarks, radius)
        in_patch = centre_crop(seg, patch).flatten(2)
        for b in range(seg.shape[0]):
            for n in range(trainer.num_landmarks):
                pairs += 1
                if not torch.any(in_patch[b, 0] == n + 1):
                    outside += 1
                    reaching += bool(full[b, n].max() > 0)
        missed += float((full - paper).clamp(min=0).sum())
        total += float(full.sum())
    return {"patch": list(patch), "samples_x_landmarks": pairs, "landmark_outside_patch": outside,
            "outside_but_cone_reaches_in": reaching, "target_mass_missed_percent": 100 * missed / total}


def train_and_test(env: dict, raw: Path, trainer: str, workdir: Path) -> dict:
    epoch_s = epoch_seconds(train_cpu(env, raw, trainer))
    summary = predict_test_cases(env, raw, trainer, workdir / f"predictions_{trainer}")
    return {"trainer": trainer, "mre_mm": summary["mre_mm"], "std_mm": summary["std_mm"],
            "sdr_2mm": summary["sdr"]["2.0"], "per_landmark": {n: v["mre_mm"] for n, v in
                                                               summary["per_landmark"].items()},
            "median_epoch_s": float(np.median(epoch_s)), "n_cases": summary["n_cases"]}


def main():
    parser = benchmark_parser(__doc__, out=default_out(__file__), workdir="patch_margin_benchmark")
    parser.add_argument("--trainer", default="nnLandmarkTrainer_CPU")
    parser.add_argument("--margin-trainer", default="nnLandmarkTrainer_CPU_Margin8")
    parser.add_argument("--statistics-only", action="store_true", help="only the missed-cone table (a minute)")
    args = parser.parse_args()
    workdir = Path(args.workdir).resolve()
    for written in [workdir / v for v in NNUNET_FOLDERS] + list(workdir.glob("predictions_*")):
        shutil.rmtree(written, ignore_errors=True)  # a fresh start, without touching anything else in --workdir
    env = nnunet_env(workdir)
    raw = spheres(env, DATASET, "Margin", n_train=24, n_test=10, seed=21)
    plan_cpu(env, DATASET)
    stats = missed_cones(env)
    print(markdown_table(["patch", "(sample, landmark) pairs", "landmark outside the patch", "... whose cone reaches in",
                          "target mass missed by patch-only targets"],
                         [[stats["patch"], stats["samples_x_landmarks"], stats["landmark_outside_patch"],
                           stats["outside_but_cone_reaches_in"], f"{stats['target_mass_missed_percent']:.1f} %"]]),
          flush=True)
    if args.statistics_only:
        write_json(args.out, {"statistics": stats})
        return
    rows = [train_and_test(training_env(env), raw, trainer, workdir)
            for trainer in (args.trainer, args.margin_trainer)]
    names = list(rows[0]["per_landmark"])
    print(markdown_table(["trainer", "MRE (mm)", "std (mm)", "SDR@2mm (%)"] + [f"{n} (mm)" for n in names] +
                         ["median epoch (s)"],
                         [[r["trainer"], f"{r['mre_mm']:.3f}", f"{r['std_mm']:.3f}", f"{r['sdr_2mm']:.1f}"] +
                          [f"{r['per_landmark'][n]:.3f}" for n in names] + [f"{r['median_epoch_s']:.1f}"]
                          for r in rows]))
    write_json(args.out, {"statistics": stats, "rows": rows})


if __name__ == "__main__":
    main()
