"""nnLandmark_evaluate: compare a prediction folder with ground truth and report MRE/std/SDR in mm."""
import argparse
import sys
from pathlib import Path

from nnlandmark.commands._cli import user_errors_as_one_line
from nnlandmark.errors import LandmarkError
from nnlandmark.evaluation import evaluate, format_table, warnings


@user_errors_as_one_line
def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="nnLandmark_evaluate",
        description="Radial errors in world mm (LPS) between predicted and true landmarks: MRE ± std (ddof 0, "
                    "micro over all case/landmark pairs), median, max, SDR@t and per-landmark tables.")
    parser.add_argument("-pred", required=True, help="folder of prediction JSON files (one per case)")
    parser.add_argument("-gt", required=True,
                        help="landmarks JSON {case: {name: [x, y, z]}} in world LPS mm, or an nnU-Net raw dataset "
                             "folder (all_landmarks_world.json if present, else the label cubes in labelsTr/labelsTs)")
    parser.add_argument("-o", default=None, help="output folder (default: PRED/evaluation)")
    parser.add_argument("--thresholds", type=float, nargs="+", default=[2, 2.5, 3, 4],
                        help="SDR thresholds in mm (default: 2 2.5 3 4)")
    args = parser.parse_args(argv)
    if any(t < 0 for t in args.thresholds):
        raise LandmarkError(f"SDR thresholds must be >= 0 mm, got {args.thresholds}")
    out_dir = Path(args.o) if args.o else Path(args.pred) / "evaluation"
    summary = evaluate(args.pred, args.gt, out_dir=out_dir, thresholds=tuple(args.thresholds))
    for line in warnings(summary):
        print(f"warning: {line}", file=sys.stderr)
    print(format_table(summary))
    print(f"\nwritten: {out_dir / 'summary.json'}, per_landmark.csv, per_case.csv")
    return 0
