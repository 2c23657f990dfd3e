"""Learning efficiency on CPU: test MRE vs training minutes (issue: performance, 4).

Data: ``--data study`` (default), a synthetic set that looks like a real study (benchmarks/_scenes.py: 32 landmarks,
80x96x80 at 2 mm, smooth deformations, two pairs 2.3-4.2 mm apart; predicting every landmark at its mean training
position gives the "mean shape" row, fitting that shape affinely to each test case's true landmarks the "affine
oracle" row), or ``--data demo`` (the demo's three spheres, 64³ at 1 mm).

Runs (``--runs``, each trainer:configuration of nnLandmarkCPUPlans):
- ``patch``: nnLandmarkTrainer_CPU_Curve on 3d_fullres, the paper's patch-based recipe at CPU scale (patch 32³);
- ``whole``: nnLandmarkTrainer_CPU_Curve on 3d_whole (``--cpu_whole_volume``: coarser spacing, whole volume as
  the patch);
- ``softargmax``: nnLandmarkTrainer_CPU_SoftArgmax_Curve on 3d_whole (BCE top-k plus a soft-argmax distance term);
- ``spatialsoftmax``: nnLandmarkTrainer_CPU_SpatialSoftmax_Curve on 3d_whole (BCE top-k plus a spatial-softmax
  cross-entropy);
- ``fine``: nnLandmarkTrainer_CPU_SpatialSoftmax_Fine_Curve on 3d_fullres, the fine stage of the cascade (patches
  around landmarks, shifted up to 8 voxels; spatial softmax within each cone); alone it reads the whole scan;
- ``cascade``: coarse to fine. The ``--coarse`` run's snapshot at ``--coarse-epoch`` predicts the cases; each
  checkpoint of the ``--fine`` model is then read only within ``--search-radius`` mm of those coarse landmarks
  (``nnLandmark_predict --search_around``). Its minutes are the coarse model's up to that epoch plus the fine
  model's. Models trained by an earlier run in the same workdir are reused.
Every 5 epochs the trainer keeps a checkpoint; each is used to predict the held-out cases, giving MRE (mm) against
the training minutes up to that epoch (sum of nnU-Net's epoch times: training and validation, no prediction): a
markdown table, a JSON file and a chart (the JSON's name with .png).

    python benchmarks/learning_efficiency.py [--data study|demo]
                                             [--runs patch whole softargmax spatialsoftmax fine cascade]
                                             [--coarse whole] [--coarse-epoch 20] [--fine fine]
                                             [--search-radius MM] [--device cpu|cuda]
                                             [--workdir DIR] [--out FILE]
                                                          (study: about 25 CPU minutes per trained run)
"""
from pathlib import Path

import numpy as np

from nnlandmark.paths import CPU_PLANS, WHOLE_VOLUME

from _common import (add_device_option, benchmark_parser, default_out, epoch_seconds, fold_folder, markdown_table,
                     nnunet_env, plan_cpu, predict_test_cases, reference_mres, scene_dataset, spheres, train_cpu,
                     training_env, write_json)

DATASET = {"study": 986, "demo": 987}
# the _Curve trainers (trainers/variants.py: the EpochSnapshots mixin) keep a checkpoint every 5 epochs
RUNS = {"patch": ("nnLandmarkTrainer_CPU_Curve", "3d_fullres"), "whole": ("nnLandmarkTrainer_CPU_Curve", WHOLE_VOLUME),
        "softargmax": ("nnLandmarkTrainer_CPU_SoftArgmax_Curve", WHOLE_VOLUME),
        "spatialsoftmax": ("nnLandmarkTrainer_CPU_SpatialSoftmax_Curve", WHOLE_VOLUME),
        "fine": ("nnLandmarkTrainer_CPU_SpatialSoftmax_Fine_Curve", "3d_fullres")}
COARSE = [run for run, (_, configuration) in RUNS.items() if configuration == WHOLE_VOLUME]
FINE = [run for run, (_, configuration) in RUNS.items() if configuration == "3d_fullres"]


def prepare(data: str, env: dict, workdir: Path, n_train: int, n_test: int) -> Path:
    """Write and preprocess the data set, unless a previous run in this workdir did (trained models are reused too)."""
    dataset = DATASET[data]
    done = list(Path(env["nnUNet_preprocessed"]).glob(f"Dataset{dataset}_*/{CPU_PLANS}_{WHOLE_VOLUME}"))
    if done:
        return Path(env["nnUNet_raw"]) / done[0].parent.name
    if data == "demo":
        raw = spheres(env, dataset, "CurveDemo", n_train=n_train, n_test=n_test)
    else:
        from _scenes import write_study_cases
        truth = write_study_cases(workdir / "images", n_train + n_test)
        raw = scene_dataset(env, dataset, "Study", workdir / "images", truth, n_train)
    plan_cpu(env, dataset, "--cpu_whole_volume")
    return raw


def trained_minutes(env: dict, raw: Path, trainer: str, configuration: str, device: str):
    """Train fold 0 unless done before; the model's fold folder and its cumulative training minutes per epoch."""
    folder = fold_folder(env, raw, trainer, configuration)
    if not (folder / "checkpoint_final.pth").is_file():
        train_cpu(env, raw, trainer, configuration, device)
    return folder, np.cumsum(epoch_seconds(folder)) / 60


def predict(env: dict, raw: Path, trainer: str, configuration: str, device: str, checkpoint: str, out: Path,
            *extra) -> dict:
    return predict_test_cases(env, raw, trainer, out, "-chk", checkpoint, *extra, configuration=configuration,
                              device=device)


def curve(env: dict, raw: Path, label: str, workdir: Path, search_radius: float,
          coarse_run: str, coarse_epoch: int, fine_run: str, device: str) -> list:
    if label == "cascade":
        coarse = RUNS[coarse_run]
        _, coarse_minutes = trained_minutes(env, raw, *coarse, device)
        prior = workdir / f"predictions_{coarse_run}_{coarse_epoch:04d}"
        predict(env, raw, *coarse, device, f"checkpoint_epoch_{coarse_epoch:04d}.pth", prior)
        trainer, configuration = RUNS[fine_run]
        extra = ("--search_around", prior, "--search_radius", search_radius)
        label = f"cascade_{coarse_run}{coarse_epoch}_{fine_run}"
        offset = coarse_minutes[coarse_epoch - 1]
    else:
        trainer, configuration = RUNS[label]
        extra, offset = (), 0.0
    folder, minutes = trained_minutes(env, raw, trainer, configuration, device)
    points = []
    for checkpoint in sorted(folder.glob("checkpoint_epoch_*.pth")):
        epoch = int(checkpoint.stem.split("_")[-1])
        summary = predict(env, raw, trainer, configuration, device, checkpoint.name,
                          workdir / f"predictions_{label}_{epoch:04d}", *extra)
        points.append({"run": label, "epoch": epoch, "minutes": float(offset + minutes[epoch - 1]),
                       "mre_mm": summary["mre_mm"], "median_mm": summary["median_mm"],
                       "sdr_4mm": summary["sdr"]["4.0"]})
        print(f"{label} epoch {epoch}: {points[-1]['minutes']:.1f} min, MRE {summary['mre_mm']:.2f} mm", flush=True)
    return points


def plot_curves(result: dict, path: str, goal_mm: float = 3.0) -> None:
    """MRE against training minutes, one line per run, with the no-image references and the goal."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=(6.5, 4.2), dpi=100)
    ax = fig.add_subplot()
    for run in dict.fromkeys(p["run"] for p in result["points"]):
        points = [p for p in result["points"] if p["run"] == run]
        ax.plot([p["minutes"] for p in points], [p["mre_mm"] for p in points], "o-", label=run)
    for value, text, style in ((result["mean_shape_mre_mm"], "mean shape", ":"),
                               (result["affine_oracle_mre_mm"], "affine oracle", "-."), (goal_mm, "goal", "--")):
        ax.axhline(value, color="0.5", lw=0.9, ls=style, label=f"{text} {value:.2f} mm")
    ax.set_yscale("log")
    ax.set_xlabel("training minutes (CPU)")
    ax.set_ylabel("test MRE (mm)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


def main():
    parser = benchmark_parser(__doc__)
    parser.add_argument("--data", choices=list(DATASET), default="study")
    parser.add_argument("--runs", nargs="+", choices=[*RUNS, "cascade"], default=["whole"])
    parser.add_argument("--search-radius", type=float, default=16.0, help="mm around the coarse landmarks (cascade)")
    parser.add_argument("--coarse", choices=COARSE, default="whole",
                        help="the whole-volume run that gives the cascade its coarse landmarks")
    parser.add_argument("--coarse-epoch", type=int, default=20, choices=range(5, 41, 5),
                        help="its snapshot used for that (every 5 epochs)")
    parser.add_argument("--fine", choices=FINE, default="fine",
                        help="the 3d_fullres run read around the coarse landmarks (cascade)")
    parser.add_argument("--cases", type=int, nargs=2, default=(30, 10), metavar=("TRAIN", "TEST"))
    parser.add_argument("--workdir", default="learning_efficiency_benchmark")
    add_device_option(parser, "train and predict here (the minutes are then GPU minutes)")
    args = parser.parse_args()
    workdir = Path(args.workdir).resolve() / args.data
    env = nnunet_env(workdir)
    raw = prepare(args.data, env, workdir, *args.cases)
    references = reference_mres(raw)
    points = []
    for label in args.runs:
        points += curve(training_env(env), raw, label, workdir, args.search_radius,
                        args.coarse, args.coarse_epoch, args.fine, args.device)
    print(f"\nno image: mean shape (every landmark at its mean training position) MRE {references['mean_shape']:.2f} "
          f"mm; affine oracle (the mean shape fitted affinely to each test case's true landmarks) MRE "
          f"{references['affine_oracle']:.2f} mm\n")
    print(markdown_table(["run", "epoch", "training minutes", "MRE (mm)", "median (mm)", "SDR@4mm (%)"],
                         [[p["run"], p["epoch"], f"{p['minutes']:.1f}", f"{p['mre_mm']:.2f}", f"{p['median_mm']:.2f}",
                           f"{p['sdr_4mm']:.1f}"] for p in points]))
    result = {"data": args.data, "mean_shape_mre_mm": references["mean_shape"],
              "affine_oracle_mre_mm": references["affine_oracle"], "points": points}
    out = args.out or default_out(f"learning_efficiency_{args.data}")
    write_json(out, result)
    plot_curves(result, str(Path(out).with_suffix(".png")))
    print(f"written: {out} and its .png chart")


if __name__ == "__main__":
    main()
