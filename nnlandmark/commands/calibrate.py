"""nnLandmark_calibrate -d ID [-tr TRAINER] [-p PLANS] [-c CONFIG]: per-landmark presence thresholds from the
cross-validation predictions, written next to the model (landmark_thresholds.json) for nnLandmark_predict."""
import argparse
from os.path import join

from nnlandmark.commands._cli import user_errors_as_one_line


@user_errors_as_one_line
def main(argv=None):
    parser = argparse.ArgumentParser(description="Calibrate presence thresholds on the cross-validation predictions "
                                                 "of the landmarks dataset.json declares 'landmarks_may_be_absent'.")
    parser.add_argument("-d", required=True, help="dataset name or ID")
    parser.add_argument("-tr", default=None, help="trainer (default: the trained model of the planner's choice)")
    parser.add_argument("-p", default=None, help="plans (default: those of the trained model)")
    parser.add_argument("-c", default="3d_fullres")
    args = parser.parse_args(argv)
    from nnlandmark.landmark_set import THRESHOLDS_JSON
    from nnlandmark.stages import find_model_folder
    from nnlandmark.presence import calibrate_model
    model = find_model_folder(args.d, args.c, args.tr, args.p)
    calibration = calibrate_model(model, args.d)
    width = max(len(n) for n in calibration)
    print(f"{'landmark':<{width}}  threshold  present  absent  sensitivity  specificity")
    for name, c in calibration.items():
        spec = "-" if c["specificity"] is None else f"{c['specificity']:.3f}"
        print(f"{name:<{width}}  {c['threshold']:9.4f}  {c['n_present']:7d}  {c['n_absent']:6d}  "
              f"{c['sensitivity']:11.3f}  {spec:>11}")
    print(f"written: {join(model, THRESHOLDS_JSON)} (nnLandmark_predict now reports \"present\": false below these "
          f"thresholds)")
