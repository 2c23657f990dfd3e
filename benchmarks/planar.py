"""2D landmarks on CPU (issue: beyond one point per channel, 2D images): a synthetic "radiograph" set of 19
landmarks at the vertices of two outlines with varied pose and shape (``synthetic.write_planar_sources``: PNG images
without spacing and ``name,i,j`` pixel CSVs, as cephalometric data comes), 256^2 pixels at 1 mm/pixel, 30 training /
10 test cases, converted with ``--spacing 1 1``, planned for CPU (nnU-Net's 2d configuration; no trainer name),
fold 0 trained, the test cases predicted from the PNG files themselves and evaluated.

``--size 768``: the same 256 mm field at 1/3 mm per pixel, larger than one CPU patch, which the planner gives a
cascade (2d_whole, the whole image at 1 mm, then 2d read around its landmarks); every planned stage is trained and
the test PNGs are predicted in one command.

Reports the test MRE, median and SDR@2/4 mm, the training minutes (sum of nnU-Net's epoch times over the stages),
and the mean-shape floor (every landmark at its mean training position) and affine oracle of the same test cases.
Target: training in under 10 minutes on 2 cores.

    python benchmarks/planar.py [--workdir DIR] [--out FILE] [--size PIXELS] [--epochs N] [--trainer NAME]
    (about 10 minutes on 2 cores; --size 768 about 20)
"""
import json
from pathlib import Path

from nnlandmark.dataset_conversion.synthetic import write_planar_sources
from nnlandmark.paths import CPU_PLANS, PLANAR, WHOLE_IMAGE
from nnlandmark.stages import EPOCHS_KEY

from _common import (benchmark_parser, default_out, edit_json, epoch_seconds, markdown_table, nnunet_env,
                     reference_mres, run_command, training_env, write_json)

DATASET, N_CASES, FIELD_MM = 984, 40, 256


def main():
    parser = benchmark_parser(__doc__, out=default_out(__file__), workdir="planar_benchmark")
    parser.add_argument("--size", type=int, default=256, help=f"pixels per side of the {FIELD_MM} mm field")
    parser.add_argument("--epochs", type=int, default=None, help="instead of the planner's epochs (of 2d)")
    parser.add_argument("--trainer", default=None, help="instead of the planner's trainer (of 2d)")
    args = parser.parse_args()
    workdir = Path(args.workdir).resolve()
    env = nnunet_env(workdir)
    spacing = FIELD_MM / args.size
    images, landmarks = write_planar_sources(str(workdir / "sources"), N_CASES, args.size, seed=3)
    run_command(env, "nnLandmark_convert", "-i", images, "-l", landmarks, "-d", DATASET, "-n", "Radiographs",
                "--spacing", spacing, spacing, "--test-fraction", 0.25, "--overwrite")
    run_command(env, "nnLandmark_plan_and_preprocess", "-d", DATASET, "-device", "cpu")
    plans = Path(env["nnUNet_preprocessed"]) / f"Dataset{DATASET}_Radiographs" / f"{CPU_PLANS}.json"
    if args.epochs:
        edit_json(plans, lambda p: p["configurations"][PLANAR].update({EPOCHS_KEY: args.epochs}))
    stages = [c for c in (WHOLE_IMAGE, PLANAR) if c in json.loads(plans.read_text())["configurations"]]
    chosen = ["-tr", args.trainer] if args.trainer else []
    for stage in stages:
        run_command(training_env(env), "nnLandmark_train", DATASET, stage, 0, "-device", "cpu",
                    *(chosen if stage == PLANAR else []))
    raw = Path(env["nnUNet_raw"]) / f"Dataset{DATASET}_Radiographs"
    folds = [next(Path(env["nnUNet_results"]).glob(f"Dataset{DATASET}_*/*__{stage}/fold_0")) for stage in stages]
    test_pngs = [str(Path(images) / f"{p.name[:-len('_0000.nii.gz')]}.png") for p in (raw / "imagesTs").iterdir()]
    predictions = workdir / "predictions"
    run_command(env, "nnLandmark_predict", "-i", *sorted(test_pngs), "-o", predictions, "-d", DATASET, "-c", PLANAR,
                "-device", "cpu", "--disable_tqdm", "--spacing", spacing, spacing, *chosen)
    run_command(env, "nnLandmark_evaluate", "-pred", predictions, "-gt", raw / "all_landmarks_world.json")
    summary = json.loads((predictions / "evaluation" / "summary.json").read_text())
    floors = reference_mres(raw)
    minutes = sum(sum(epoch_seconds(fold)) for fold in folds) / 60
    epochs = " + ".join(str(json.loads(plans.read_text())["configurations"][s][EPOCHS_KEY]) for s in stages)
    rows = [["test MRE / median, mm", f"{summary['mre_mm']:.2f} / {summary['median_mm']:.2f}"],
            ["SDR @2 / @4 mm, %", f"{summary['sdr']['2.0']:.1f} / {summary['sdr']['4.0']:.1f}"],
            ["mean-shape floor / affine oracle MRE, mm", f"{floors['mean_shape']:.2f} / {floors['affine_oracle']:.2f}"],
            ["training minutes (epochs)", f"{minutes:.1f} ({epochs})"]]
    print(markdown_table([f"2D radiographs, 19 landmarks, {args.size}^2 at {spacing:.3g} mm", "value"], rows))
    write_json(args.out, {"trainer": args.trainer, "size": args.size, "stages": stages,
                          "summary": {k: summary[k] for k in ("mre_mm", "median_mm", "sdr")},
                          "floors": floors, "training_minutes": minutes, "epochs": epochs})


if __name__ == "__main__":
    main()
