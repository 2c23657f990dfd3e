"""Learning efficiency on CPU: test MRE vs training minutes (issue: performance, 4).

Data: ``--data study`` (default), a synthetic set that looks like a real study (benchmarks/_study.py: 32 landmarks,
80x96x80 at 2 mm, smooth deformations, two pairs 2.3-4.2 mm apart; predicting every landmark at its mean training
position gives the "mean shape" row), or ``--data demo`` (the demo's three spheres, 64³ at 1 mm).

Runs (``--runs``, each trainer:configuration of nnLandmarkCPUPlans):
- ``patch``: nnLandmarkTrainer_CPU_Curve on 3d_fullres, the paper's patch-based recipe at CPU scale (patch 32³);
- ``whole``: nnLandmarkTrainer_CPU_Curve on 3d_whole (``--cpu_whole_volume``: coarser spacing, whole volume as
  the patch);
- ``softargmax``: nnLandmarkTrainer_CPU_SoftArgmax_Curve on 3d_whole (BCE top-k plus a soft-argmax distance term);
- ``spatialsoftmax``: nnLandmarkTrainer_CPU_SpatialSoftmax_Curve on 3d_whole (BCE top-k plus a spatial-softmax
  cross-entropy);
- ``cascade``: coarse to fine. The ``--coarse`` run's snapshot at ``--coarse-epoch`` predicts the cases; each
  checkpoint of the ``patch`` model is then read only within ``--search-radius`` mm of those coarse landmarks
  (``nnLandmark_predict --search_around``). Its minutes are the coarse model's up to that epoch plus the fine
  model's. Models trained by an earlier run in the same workdir are reused.
Every 5 epochs the trainer keeps a checkpoint; each is used to predict the held-out cases, giving MRE (mm) against
the training minutes up to that epoch (sum of nnU-Net's epoch times: training and validation, no prediction).

    python benchmarks/learning_efficiency.py [--data study|demo]
                                             [--runs patch whole softargmax spatialsoftmax cascade]
                                             [--coarse whole] [--coarse-epoch 20] [--search-radius MM]
                                             [--workdir DIR] [--out FILE]
                                                          (study: about 25 CPU minutes per trained run)
"""
import argparse
import json
import os
from pathlib import Path

import numpy as np
import torch

from _common import markdown_table, run_command, write_json

DATASET = {"study": 986, "demo": 987}
RUNS = {"patch": ("nnLandmarkTrainer_CPU_Curve", "3d_fullres"), "whole": ("nnLandmarkTrainer_CPU_Curve", "3d_whole"),
        "softargmax": ("nnLandmarkTrainer_CPU_SoftArgmax_Curve", "3d_whole"),
        "spatialsoftmax": ("nnLandmarkTrainer_CPU_SpatialSoftmax_Curve", "3d_whole")}
COARSE = [run for run, (_, configuration) in RUNS.items() if configuration == "3d_whole"]


def prepare(data: str, env: dict, workdir: Path, n_train: int, n_test: int) -> Path:
    """Write and preprocess the data set, unless a previous run in this workdir did (trained models are reused too)."""
    from nnlandmark.dataset_conversion.dataset_writer import CaseSource, write_landmark_dataset
    from nnlandmark.dataset_conversion.synthetic import make_synthetic_dataset
    dataset = DATASET[data]
    done = list(Path(env["nnUNet_preprocessed"]).glob(f"Dataset{dataset}_*/nnLandmarkCPUPlans_3d_whole"))
    if done:
        return Path(env["nnUNet_raw"]) / done[0].parent.name
    if data == "demo":
        raw = Path(make_synthetic_dataset(env["nnUNet_raw"], dataset, "CurveDemo", n_train=n_train, n_test=n_test))
    else:
        from _study import write_study_cases
        truth = write_study_cases(workdir / "images", n_train + n_test)
        cases = [CaseSource(case, [str(workdir / "images" / f"{case}.nii.gz")], points, "voxel", case)
                 for case, points in truth.items()]
        raw = Path(write_landmark_dataset(cases, env["nnUNet_raw"], dataset, "Study", overwrite=True,
                                          test_cases=[c.case for c in cases[n_train:]]))
    run_command(env, "nnLandmark_plan_and_preprocess", "-d", dataset, "--cpu_plans", "--cpu_whole_volume")
    return raw


def mean_shape_mre(raw: Path) -> float:
    """MRE of predicting each landmark at its mean training position (world mm): what a model must beat."""
    world = json.loads((raw / "all_landmarks_world.json").read_text())
    test = {p.name[:-len("_0000.nii.gz")] for p in (raw / "imagesTs").glob("*_0000.nii.gz")}
    names = list(next(iter(world.values())))
    mean = {n: np.mean([world[c][n] for c in world if c not in test and world[c][n] is not None], 0) for n in names}
    return float(np.mean([np.linalg.norm(np.subtract(world[c][n], mean[n])) for c in test for n in names
                          if world[c][n] is not None]))


def trained_minutes(env: dict, raw: Path, dataset: int, trainer: str, configuration: str):
    """Train fold 0 unless done before; the model's fold folder and its cumulative training minutes per epoch."""
    folder = Path(env["nnUNet_results"]) / raw.name / f"{trainer}__nnLandmarkCPUPlans__{configuration}" / "fold_0"
    if not (folder / "checkpoint_final.pth").is_file():
        run_command(env, "nnLandmark_train", dataset, configuration, 0, "-tr", trainer, "-p", "nnLandmarkCPUPlans",
                    "-device", "cpu")
    logging = torch.load(folder / "checkpoint_final.pth", map_location="cpu", weights_only=False)["logging"]
    return folder, np.cumsum(np.subtract(logging["epoch_end_timestamps"], logging["epoch_start_timestamps"])) / 60


def predict(env: dict, raw: Path, dataset: int, trainer: str, configuration: str, checkpoint: str, out: Path,
            *extra) -> dict:
    run_command(env, "nnLandmark_predict", "-i", raw / "imagesTs", "-o", out, "-d", dataset, "-tr", trainer,
                "-p", "nnLandmarkCPUPlans", "-c", configuration, "-chk", checkpoint, "-device", "cpu",
                "--disable_tqdm", *extra)
    run_command(env, "nnLandmark_evaluate", "-pred", out, "-gt", raw / "all_landmarks_world.json")
    return json.loads((out / "evaluation" / "summary.json").read_text())


def curve(env: dict, raw: Path, dataset: int, label: str, workdir: Path, search_radius: float,
          coarse_run: str, coarse_epoch: int) -> list:
    if label == "cascade":
        coarse = RUNS[coarse_run]
        _, coarse_minutes = trained_minutes(env, raw, dataset, *coarse)
        prior = workdir / f"predictions_{coarse_run}_{coarse_epoch:04d}"
        predict(env, raw, dataset, *coarse, f"checkpoint_epoch_{coarse_epoch:04d}.pth", prior)
        trainer, configuration = RUNS["patch"]
        extra = ("--search_around", prior, "--search_radius", search_radius)
        offset = coarse_minutes[coarse_epoch - 1]
    else:
        trainer, configuration = RUNS[label]
        extra, offset = (), 0.0
    folder, minutes = trained_minutes(env, raw, dataset, trainer, configuration)
    points = []
    for checkpoint in sorted(folder.glob("checkpoint_epoch_*.pth")):
        epoch = int(checkpoint.stem.split("_")[-1])
        summary = predict(env, raw, dataset, trainer, configuration, checkpoint.name,
                          workdir / f"predictions_{label}_{epoch:04d}", *extra)
        points.append({"run": label, "epoch": epoch, "minutes": float(offset + minutes[epoch - 1]),
                       "mre_mm": summary["mre_mm"], "median_mm": summary["median_mm"],
                       "sdr_4mm": summary["sdr"]["4.0"]})
        print(f"{label} epoch {epoch}: {points[-1]['minutes']:.1f} min, MRE {summary['mre_mm']:.2f} mm", flush=True)
    return points


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=list(DATASET), default="study")
    parser.add_argument("--runs", nargs="+", choices=[*RUNS, "cascade"], default=["whole"])
    parser.add_argument("--search-radius", type=float, default=16.0, help="mm around the coarse landmarks (cascade)")
    parser.add_argument("--coarse", choices=COARSE, default="whole",
                        help="the whole-volume run that gives the cascade its coarse landmarks")
    parser.add_argument("--coarse-epoch", type=int, default=20, choices=range(5, 41, 5),
                        help="its snapshot used for that (every 5 epochs)")
    parser.add_argument("--cases", type=int, nargs=2, default=(30, 10), metavar=("TRAIN", "TEST"))
    parser.add_argument("--workdir", default="learning_efficiency_benchmark")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    workdir = Path(args.workdir).resolve() / args.data
    env = {**os.environ, **{v: str(workdir / v) for v in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}}
    raw = prepare(args.data, env, workdir, *args.cases)
    baseline = mean_shape_mre(raw)
    points = []
    for label in args.runs:
        points += curve({**env, "nnUNet_n_proc_DA": "1"}, raw, DATASET[args.data], label, workdir, args.search_radius,
                        args.coarse, args.coarse_epoch)
    print(f"\nmean shape (every landmark at its mean training position): MRE {baseline:.2f} mm\n")
    print(markdown_table(["run", "epoch", "training minutes", "MRE (mm)", "median (mm)", "SDR@4mm (%)"],
                         [[p["run"], p["epoch"], f"{p['minutes']:.1f}", f"{p['mre_mm']:.2f}", f"{p['median_mm']:.2f}",
                           f"{p['sdr_4mm']:.1f}"] for p in points]))
    write_json(args.out or f"benchmarks/results/learning_efficiency_{args.data}.json",
               {"data": args.data, "mean_shape_mre_mm": baseline, "points": points})


if __name__ == "__main__":
    main()
