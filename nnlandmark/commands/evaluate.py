"""nnLandmark_evaluate: compare prediction folder(s) or cross-validation folds with ground truth, in mm."""
import argparse
import math
import sys
from pathlib import Path

from nnlandmark.commands._cli import positive_float, user_errors_as_one_line
from nnlandmark.errors import LandmarkError


def _parser():
    parser = argparse.ArgumentParser(
        prog="nnLandmark_evaluate",
        description="Radial errors in world mm (LPS) between predicted and true landmarks: MRE ± std (ddof 0, "
                    "micro over all case/landmark pairs), median, max, SDR@t and per-landmark tables.")
    parser.add_argument("-pred", nargs="+", default=None,
                        help="folder of prediction JSON files (one per case); several folders: a side-by-side "
                             "comparison on the (case, landmark) pairs common to all")
    parser.add_argument("-gt", default=None,
                        help="landmarks JSON {case: {name: [x, y, z] | null}} in world LPS mm (a top-level "
                             "\"coordinate_system\": \"RAS\" is converted; voxel indices, such as "
                             "all_landmarks_voxel.json, are refused), or an nnU-Net raw dataset folder "
                             "(all_landmarks_world.json if present, else the label cubes in labelsTr/labelsTs)")
    parser.add_argument("-d", default=None, help="cross-validation: dataset name or id (instead of -pred); pools "
                        "$nnUNet_results/DatasetXXX/TR__P__C/fold_*/validation")
    parser.add_argument("-tr", default=None, help="cross-validation: trainer (default: the planner's choice)")
    parser.add_argument("-p", default=None, help="cross-validation: plans identifier (default: the trained one)")
    parser.add_argument("-c", default=None, help="cross-validation: configuration (default: 3d_fullres, or 2d for a "
                                                 "model of 2D images)")
    parser.add_argument("-o", default=None, help="output folder (default: PRED/evaluation; several -pred folders: "
                        "PARENT_OF_FIRST/comparison; -d: MODEL_FOLDER/crossval_evaluation)")
    parser.add_argument("--thresholds", type=float, nargs="+", default=[2, 2.5, 3, 4],
                        help="SDR thresholds in mm (default: 2 2.5 3 4)")
    parser.add_argument("--pairs", nargs="+", default=None, metavar="A:B",
                        help="biometry landmark pairs (default: 'biometry_pairs' of the raw dataset's dataset.json)")
    parser.add_argument("--qc", type=int, default=0, metavar="N",
                        help="QC pictures (three slices per landmark) of the N cases with the largest MRE")
    parser.add_argument("--match_mm", type=positive_float, default=4.0,
                        help="multi-instance classes: a predicted instance counts as found within this distance of a "
                             "true one (default 4 mm)")
    parser.add_argument("-images", default=None,
                        help="images for --qc, named CASE_0000.ext (default: the raw dataset's imagesTr/imagesTs)")
    return parser


def _print_report(report) -> None:
    from nnlandmark.evaluation.biometry import format_biometry
    from nnlandmark.evaluation.detection import format_detection
    from nnlandmark.evaluation.report import format_table, warnings
    summary = report.summary
    for line in warnings(summary):
        print(f"warning: {line}", file=sys.stderr)
    for key, stats in summary.get("biometry", {}).get("pairs", {}).items():
        if stats["n"] == 0:
            print(f"warning: biometry pair {key}: no case has both landmarks in prediction and ground truth",
                  file=sys.stderr)
    print(format_table(summary))
    if "detection" in summary:
        print("\n" + format_detection(summary["detection"]))
    if "biometry" in summary:
        print("\nBiometry: " + summary["biometry"]["definition"])
        print(format_biometry(summary["biometry"]))
    if "instances" in summary:
        from nnlandmark.evaluation.instances import format_instances
        print("\n" + format_instances(summary["instances"]))
    if "error_estimates" in summary:
        from nnlandmark.evaluation.reliability import format_error_estimates
        print("\n" + format_error_estimates(summary["error_estimates"]))
    pictures = [p for p in report.written if p.parent.name == "qc"]
    names = [p.name for p in report.written[1:] if p not in pictures]
    print("\nwritten: " + ", ".join([str(report.written[0])] + names +
                                     [f"qc/ ({len(pictures)} case(s))"] * bool(pictures)))


def _print_comparison(report) -> None:
    from nnlandmark.evaluation.comparison import format_comparison
    for name, extra in report.left_out.items():
        if extra:
            print(f"warning: {name}: {extra} (case, landmark) pair(s) not common to all folders, excluded",
                  file=sys.stderr)
    print(f"Compared on {report.n_common} (case, landmark) pairs common to all {len(report.rows)} folders and the "
          f"ground truth; MRE ± std (ddof 0) in world mm, SDR@t = % of pairs with error <= t mm.")
    print(format_comparison(report.rows))
    print("\nwritten: " + ", ".join([str(report.written[0])] + [p.name for p in report.written[1:]]))


@user_errors_as_one_line
def main(argv=None):
    args = _parser().parse_args(argv)
    if not all(math.isfinite(t) and t >= 0 for t in args.thresholds):
        raise LandmarkError(f"--thresholds must be finite numbers of mm >= 0, got "
                            f"{' '.join(map(str, args.thresholds))}")
    if (args.pred is None) == (args.d is None):
        raise LandmarkError("give either -pred FOLDER [FOLDER ...] or -d DATASET (cross-validation), not both")
    if args.qc < 0:
        raise LandmarkError(f"--qc must be >= 0, got {args.qc}")
    from nnlandmark.evaluation.biometry import parse_pairs
    from nnlandmark.evaluation.pipeline import compare_report, crossval_report, evaluate_report
    options = dict(thresholds=tuple(args.thresholds), pairs=parse_pairs(args.pairs) if args.pairs else None,
                   qc=args.qc, image_folders=[Path(args.images)] if args.images else None, match_mm=args.match_mm)
    if args.d is not None:
        from nnlandmark.presence import read_instance_detection
        from nnlandmark.stages import default_configuration, find_model_folder
        model = Path(find_model_folder(args.d, args.c or default_configuration(args.d), args.tr, args.p))
        report, folds = crossval_report(model, args.d, args.gt, args.o,
                                        instance_detection=read_instance_detection(str(model)), **options)
        print(f"Cross-validation of {model.name}: {len(folds)} fold(s) found ({', '.join(folds)}), "
              f"{len(report.summary['per_case'])} validation case(s) pooled")
    elif args.gt is None:
        raise LandmarkError("-gt is required with -pred")
    elif len(args.pred) > 1:
        if args.pairs or args.qc or args.images:
            raise LandmarkError("--pairs, --qc and -images apply to one -pred folder (or -d), not to a comparison of "
                                "several -pred folders: evaluate each folder on its own for them")
        out_dir = Path(args.o) if args.o else Path(args.pred[0]).resolve().parent / "comparison"
        _print_comparison(compare_report(args.pred, args.gt, out_dir, tuple(args.thresholds)))
        return 0
    else:
        report = evaluate_report(args.pred[0], args.gt, Path(args.o) if args.o else Path(args.pred[0]) / "evaluation",
                                 **options)
    _print_report(report)
    return 0
