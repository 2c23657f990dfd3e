"""nnLandmark_evaluate: compare prediction folder(s) or cross-validation folds with ground truth, in mm."""
import argparse
import sys
from pathlib import Path

from nnlandmark.commands._cli import user_errors_as_one_line
from nnlandmark.errors import LandmarkError
from nnlandmark.evaluation import (evaluate_points, format_table, load_ground_truth, load_predictions,
                                   pairs_from_dataset, parse_pairs, radial_errors, read_ground_truth, read_predictions,
                                   warnings, write_summary)
from nnlandmark.evaluation.biometry import format_biometry, write_biometry_csv
from nnlandmark.evaluation.detection import detection_summary
from nnlandmark.evaluation.io import read_json


def _parser():
    parser = argparse.ArgumentParser(
        prog="nnLandmark_evaluate",
        description="Radial errors in world mm (LPS) between predicted and true landmarks: MRE ± std (ddof 0, "
                    "micro over all case/landmark pairs), median, max, SDR@t and per-landmark tables.")
    parser.add_argument("-pred", nargs="+", default=None,
                        help="folder of prediction JSON files (one per case); several folders: a side-by-side "
                             "comparison on the (case, landmark) pairs common to all")
    parser.add_argument("-gt", default=None,
                        help="landmarks JSON {case: {name: [x, y, z]}} in world LPS mm, or an nnU-Net raw dataset "
                             "folder (all_landmarks_world.json if present, else the label cubes in labelsTr/labelsTs)")
    parser.add_argument("-d", default=None, help="cross-validation: dataset name or id (instead of -pred); pools "
                        "$nnUNet_results/DatasetXXX/TR__P__C/fold_*/validation")
    parser.add_argument("-tr", default="nnLandmarkTrainer", help="cross-validation: trainer")
    parser.add_argument("-p", default="nnUNetPlans", help="cross-validation: plans identifier")
    parser.add_argument("-c", default="3d_fullres", help="cross-validation: configuration")
    parser.add_argument("-o", default=None, help="output folder (default: PRED/evaluation; several -pred folders: "
                        "PARENT_OF_FIRST/comparison; -d: MODEL_FOLDER/crossval_evaluation)")
    parser.add_argument("--thresholds", type=float, nargs="+", default=[2, 2.5, 3, 4],
                        help="SDR thresholds in mm (default: 2 2.5 3 4)")
    parser.add_argument("--pairs", nargs="+", default=None, metavar="A:B",
                        help="biometry landmark pairs (default: 'biometry_pairs' of the raw dataset's dataset.json)")
    parser.add_argument("--qc", type=int, default=0, metavar="N",
                        help="QC pictures (three slices per landmark) of the N cases with the largest MRE")
    parser.add_argument("-images", default=None,
                        help="images for --qc, named CASE_0000.ext (default: the raw dataset's imagesTr/imagesTs)")
    return parser


def _dataset_ending(gt) -> str:
    path = Path(gt) / "dataset.json" if gt is not None else None
    if path is None or not path.is_file():
        return None
    info = read_json(path)
    ending = info.get("file_ending") if isinstance(info, dict) else None
    return ending if isinstance(ending, str) and ending else None


def _qc(args, summary, pred, truth, out_dir):
    from nnlandmark.evaluation.qc import worst_cases, write_qc
    gt_dir = Path(args.gt) if args.gt is not None and Path(args.gt).is_dir() else None
    if args.images:
        folders = [Path(args.images)]
    elif gt_dir is not None and (gt_dir / "dataset.json").is_file():
        folders = [gt_dir / "imagesTr", gt_dir / "imagesTs"]
    else:
        raise LandmarkError("--qc needs the images: give -images DIR or -gt a raw dataset folder")
    cases = worst_cases(summary["per_case"], args.qc)
    return write_qc(cases, pred, truth, folders, out_dir, _dataset_ending(gt_dir), summary["per_case"])


def _single(args, pred, truth, pairs, out_dir, detection=None):
    from nnlandmark.evaluation.plots import errors_boxplot, sdr_curve
    summary, errors, bio = evaluate_points(pred, truth, tuple(args.thresholds), pairs)
    if detection is not None:
        summary["detection"] = detection
    write_summary(summary, out_dir)
    written = ["summary.json", "per_landmark.csv", "per_case.csv"]
    if pairs:
        write_biometry_csv(bio, out_dir)
        written.append("biometry.csv")
    errors_boxplot(errors, out_dir / "errors_boxplot.png")
    sdr_curve({"prediction": errors}, out_dir / "sdr_curve.png", args.thresholds)
    written += ["errors_boxplot.png", "sdr_curve.png"]
    if args.qc > 0:
        written.append(f"qc/ ({len(_qc(args, summary, pred, truth, out_dir))} case(s))")
    for line in warnings(summary):
        print(f"warning: {line}", file=sys.stderr)
    for key, stats in summary.get("biometry", {}).get("pairs", {}).items():
        if stats["n"] == 0:
            print(f"warning: biometry pair {key}: no case has both landmarks in prediction and ground truth",
                  file=sys.stderr)
    print(format_table(summary))
    if "detection" in summary:
        from nnlandmark.evaluation.detection import format_detection
        print("\n" + format_detection(summary["detection"]))
    if pairs:
        print("\nBiometry: " + summary["biometry"]["definition"])
        print(format_biometry(summary["biometry"]))
    print(f"\nwritten: {out_dir / written[0]}, " + ", ".join(written[1:]))
    return 0


def _compare(args, folders, truth, out_dir):
    from nnlandmark.evaluation.comparison import (common_pairs, compare, comparison_rows, format_comparison,
                                                  method_names, write_comparison)
    from nnlandmark.evaluation.plots import sdr_curve
    methods = dict(zip(method_names(folders), (load_predictions(f) for f in folders)))
    errors = compare(methods, truth)
    n_common = sum(len(v) for v in common_pairs(methods, truth).values())
    for name, pred in methods.items():
        extra = len(radial_errors(pred, truth)) - n_common
        if extra:
            print(f"warning: {name}: {extra} (case, landmark) pair(s) not common to all folders, excluded",
                  file=sys.stderr)
    rows = comparison_rows(errors)
    write_comparison(rows, out_dir)
    sdr_curve(errors, out_dir / "sdr_curve.png", args.thresholds)
    print(f"Compared on {n_common} (case, landmark) pairs common to all {len(methods)} folders and the ground "
          f"truth; MRE ± std (ddof 0) in world mm, SDR@t = % of pairs with error <= t mm.")
    print(format_comparison(rows))
    print(f"\nwritten: {out_dir / 'comparison.csv'}, sdr_curve.png")
    return 0


@user_errors_as_one_line
def main(argv=None):
    args = _parser().parse_args(argv)
    if any(t < 0 for t in args.thresholds):
        raise LandmarkError(f"SDR thresholds must be >= 0 mm, got {args.thresholds}")
    if (args.pred is None) == (args.d is None):
        raise LandmarkError("give either -pred FOLDER [FOLDER ...] or -d DATASET (cross-validation), not both")
    if args.qc < 0:
        raise LandmarkError(f"--qc must be >= 0, got {args.qc}")
    if args.d is not None:
        from nnlandmark.evaluation.crossval import collect_folds, cv_ground_truth
        from nnlandmark.paths import model_folder
        model = Path(model_folder(args.d, args.tr, args.p, args.c))
        pred, folds = collect_folds(model)
        detection = None
        if args.gt is None:
            truth, _, gt_source = cv_ground_truth(args.d)
            args.gt = str(gt_source)
        else:
            truth = load_ground_truth(args.gt)
        print(f"Cross-validation of {model.name}: {len(folds)} fold(s) found ({', '.join(folds)}), "
              f"{len(pred)} validation case(s) pooled")
        out_dir = Path(args.o) if args.o else model / "crossval_evaluation"
    else:
        if args.gt is None:
            raise LandmarkError("-gt is required with -pred")
        truth, true_presence = read_ground_truth(args.gt)
        if len(args.pred) > 1:
            out_dir = Path(args.o) if args.o else Path(args.pred[0]).resolve().parent / "comparison"
            return _compare(args, args.pred, truth, out_dir)
        pred, predicted_presence = read_predictions(args.pred[0])
        detection = detection_summary(predicted_presence, true_presence)
        out_dir = Path(args.o) if args.o else Path(args.pred[0]) / "evaluation"
    gt_is_dataset = Path(args.gt).is_dir()
    pairs = parse_pairs(args.pairs) if args.pairs else (pairs_from_dataset(args.gt) if gt_is_dataset else [])
    return _single(args, pred, truth, pairs, out_dir, detection)
