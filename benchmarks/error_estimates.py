"""Calibrated error estimates on the default path's trained models (issue: calibrated uncertainty): how well
``expected_error_mm`` and the 90 % ``radius_mm``, calibrated on the cross-validation predictions, judge the held-out
test cases. Run after ``default_path.py`` with the same ``--data`` and ``--workdir``; it validates the planned
stages again where their validation files predate the peak features (``nnLandmark_train ... --val``), calibrates
(``nnLandmark_calibrate``), predicts the test cases with ``--review`` and evaluates them.

Reports the radius's coverage on the test cases and its median against the one global radius the CV errors would
need for the same coverage, Spearman(expected, actual), AUROC of the expected error for errors above 2 and 4 mm,
and what a review list at each ``--review`` cut (landmarks whose expected error exceeds it) catches: how many of
the test errors above 4 mm it lists, and how many landmarks a person would look at. For scale, the Spearman of a
hindsight oracle that knows each landmark's own mean test error: errors near the rater level are mostly noise around
a per-landmark scale, and no per-landmark estimate ranks them better than that.

    python benchmarks/error_estimates.py [--data study|mni_t1|mni_t2w] [--review 4 2 1.5] [-f 0] [--workdir DIR]
                                         [--out FILE]
    (a few minutes on 2 cores once default_path.py has trained)
"""
import csv
import json
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from nnlandmark.paths import CPU_PLANS
from nnlandmark.stages import TRAINER_KEY

from _common import benchmark_parser, default_out, environment, markdown_table, run_command, write_json
from default_path import DATASETS, trained_default_path

LARGE_MM = 4.0   # the errors a review list should catch


def has_peak_features(validation: Path) -> bool:
    case = next(p for p in sorted(validation.glob("*.json")) if p.name != "summary.json")
    return all("peak" in entry for entry in json.loads(case.read_text())["landmarks"].values())


def main():
    parser = benchmark_parser(__doc__, workdir="default_path_benchmark")
    parser.add_argument("--data", choices=list(DATASETS), default="study")
    parser.add_argument("--review", type=float, nargs="+", default=[4.0, 2.0, 1.5],
                        help="review list cuts in mm (default 4 2 1.5)")
    parser.add_argument("-f", nargs="+", default=None, metavar="FOLD",
                        help="the fine stage's folds that predict the test cases (default: all trained; the "
                             "calibration always uses every validated fold)")
    args = parser.parse_args()
    args.out = args.out or default_out("error_estimates" + ("" if args.data == "study" else f"_{args.data}"))
    workdir = Path(args.workdir).resolve()
    env, dataset, raw, plans = trained_default_path(workdir, args.data)
    stages = [c for c in ("3d_whole", "3d_fullres") if TRAINER_KEY in plans["configurations"].get(c, {})]
    for configuration in stages:
        trainer = plans["configurations"][configuration][TRAINER_KEY]
        fold = Path(env["nnUNet_results"]) / raw.name / f"{trainer}__{CPU_PLANS}__{configuration}" / "fold_0"
        if not has_peak_features(fold / "validation"):
            print(f"validating {configuration} again (its validation predates the peak features)", flush=True)
            run_command({**env, "nnUNet_n_proc_DA": "1"}, "nnLandmark_train", dataset, configuration, 0, "--val",
                        "-device", "cpu")
    calibrated = run_command(env, "nnLandmark_calibrate", "-d", dataset)
    print(calibrated.strip(), flush=True)
    model = Path(env["nnUNet_results"]) / raw.name / \
        f"{plans['configurations']['3d_fullres'][TRAINER_KEY]}__{CPU_PLANS}__3d_fullres"
    calibration = json.loads((model / "landmark_uncertainty.json").read_text())
    predictions = workdir / f"predictions_{args.data}_reviewed"
    run_command(env, "nnLandmark_predict", "-i", raw / "imagesTs", "-o", predictions, "-d", dataset, "-device", "cpu",
                "--disable_tqdm", "--review", min(args.review), *(["-f", *args.f] if args.f else []))
    run_command(env, "nnLandmark_evaluate", "-pred", predictions, "-gt", raw / "all_landmarks_world.json")
    summary = json.loads((predictions / "evaluation" / "summary.json").read_text())
    section = summary["error_estimates"]
    truth = json.loads((raw / "all_landmarks_world.json").read_text())
    errors = {}
    for path in predictions.glob("*.json"):
        case = json.loads(path.read_text())
        for name, entry in case["landmarks"].items():
            true = truth[case["case"]].get(name)
            if true is not None:
                errors[case["case"], name] = sum((a - b) ** 2 for a, b in zip(entry["world"], true)) ** 0.5
    with open(predictions / "review.csv", newline="") as f:
        listed = [((row["case"], row["landmark"]), float(row["expected_error_mm"])) for row in csv.DictReader(f)]
    large = {key for key, error in errors.items() if error > LARGE_MM}
    # the ceiling of any per-landmark estimate: each landmark's own mean test error (known only in hindsight)
    by_landmark = {}
    for (_, name), error in errors.items():
        by_landmark.setdefault(name, []).append(error)
    oracle = spearmanr([np.mean(by_landmark[name]) for _, name in errors], list(errors.values())).statistic
    reviews = []
    for cut in sorted(args.review, reverse=True):
        reviewed = {key for key, expected in listed if expected > cut}
        reviews.append({"cut_mm": cut, "listed": len(reviewed), "caught": len(large & reviewed),
                        "large_errors": len(large)})
    auroc = section["auroc"]
    print(markdown_table(["", "value"], [
        ["test landmarks", section["n_pairs"]],
        ["CV landmarks calibrated on (cases)", f"{calibration['n_pairs']} ({calibration['n_cases']})"],
        ["radius coverage on test (stated)", f"{100 * section['radius_coverage']:.1f} % "
                                             f"({100 * section['radius_coverage_stated']:.0f} %)"],
        ["median radius (mm)", f"{section['median_radius_mm']:.2f}"],
        ["one global CV radius for that coverage (mm)", f"{calibration['global_radius_mm']:.2f}"],
        ["Spearman(expected, actual)", "-" if section["spearman"] is None else f"{section['spearman']:.3f}"],
        ["Spearman of the hindsight oracle (each landmark's own mean test error)", f"{oracle:.3f}"],
        ["AUROC, error > 2 mm", "-" if auroc["2.0"] is None else f"{auroc['2.0']:.3f}"],
        ["AUROC, error > 4 mm", "-" if auroc["4.0"] is None else f"{auroc['4.0']:.3f}"],
        *[[f"review list at {r['cut_mm']:g} mm: landmarks listed, errors > {LARGE_MM:g} mm caught",
           f"{r['listed']}, {r['caught']} of {r['large_errors']}"] for r in reviews],
        ["test MRE (mm)", f"{summary['mre_mm']:.2f}"]]))
    write_json(args.out, {"environment": environment("cpu"), "data": args.data, "review_mm": args.review,
                          "predicting_folds": args.f or "all",
                          "calibration": {k: calibration[k] for k in ("n_pairs", "n_cases", "coverage", "quantile",
                                                                      "global_radius_mm", "median_radius_mm")},
                          "test": {k: section[k] for k in ("n_pairs", "radius_coverage", "median_radius_mm",
                                                           "spearman", "auroc", "reliability")},
                          "review": reviews, "oracle_per_landmark_spearman": oracle,
                          "mre_mm": summary["mre_mm"]})
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
