"""nnLandmark_calibrate -d ID [-tr TRAINER] [-p PLANS] [-c CONFIG] [--coverage 0.9]: from the cross-validation
predictions, the calibrated error model (landmark_uncertainty.json: expected_error_mm and radius_mm of every
prediction) and, for the landmarks dataset.json declares 'landmarks_may_be_absent', the presence thresholds
(landmark_thresholds.json), and for its 'multi_instance' classes the likelihood threshold and NMS distance of maximum
F1 (instance_detection.json), all written next to the model for nnLandmark_predict."""
import argparse
from os.path import join

from nnlandmark.commands._cli import positive_float, user_errors_as_one_line


@user_errors_as_one_line
def main(argv=None):
    parser = argparse.ArgumentParser(description="Calibrate a trained model on its cross-validation predictions: "
                                                 "the error estimate and prediction radius of every landmark, and "
                                                 "presence thresholds where landmarks may be absent.")
    parser.add_argument("-d", required=True, help="dataset name or ID")
    parser.add_argument("-tr", default=None, help="trainer (default: the trained model of the planner's choice)")
    parser.add_argument("-p", default=None, help="plans (default: those of the trained model)")
    parser.add_argument("-c", default=None, help="configuration (default: 3d_fullres, or 2d for a model of 2D images)")
    parser.add_argument("--coverage", type=float, default=0.9,
                        help="share of landmarks whose true position lies within radius_mm (default 0.9)")
    parser.add_argument("--match_mm", type=positive_float, default=4.0,
                        help="multi-instance classes: a predicted instance within this distance of a true one is a "
                             "hit (default 4)")
    args = parser.parse_args(argv)
    from nnlandmark.errors import LandmarkError
    from nnlandmark.evaluation.crossval import cv_instance_truth
    from nnlandmark.io.atomic import read_json
    from nnlandmark.landmark_set import (INSTANCES_JSON, THRESHOLDS_JSON, UNCERTAINTY_JSON, may_be_absent,
                                         multi_instance, single_landmarks)
    from nnlandmark.presence import calibrate_instances, calibrate_model
    from nnlandmark.stages import default_configuration, find_model_folder
    from nnlandmark.uncertainty import calibrate_errors, unsteady_radius
    if not 0 < args.coverage < 1:
        raise LandmarkError(f"--coverage must lie between 0 and 1 (e.g. 0.9), got {args.coverage}")
    model = find_model_folder(args.d, args.c or default_configuration(args.d), args.tr, args.p)
    dataset_json = read_json(join(model, "dataset.json"))
    if multi_instance(dataset_json):
        for name, c in calibrate_instances(model, cv_instance_truth(args.d), args.match_mm).items():
            print(f"instances of '{name}' from {c['n_cases']} validated cases: likelihood >= {c['threshold']:.4f}, "
                  f"{c['nms_mm']:.2f} mm apart: F1 {c['f1']:.3f} within {c['match_mm']:g} mm")
        print(f"written: {join(model, INSTANCES_JSON)}")
        if not single_landmarks(dataset_json):
            return   # no single landmark: no presence or error calibration
    thresholds_written = may_be_absent(dataset_json)
    if thresholds_written:
        print_thresholds(calibrate_model(model, args.d))
        print(f"written: {join(model, THRESHOLDS_JSON)} (nnLandmark_predict now reports \"present\": false below "
              f"these thresholds)")
    try:
        errors = calibrate_errors(model, args.d, args.coverage)
    except LandmarkError as e:
        raise LandmarkError(f"{THRESHOLDS_JSON} written, but no error calibration: {e}") if thresholds_written \
            else e from None
    print(f"error calibration from {errors['n_pairs']} validated landmarks of {errors['n_cases']} cases: a "
          f"{errors['coverage']:.0%} radius of median {errors['median_radius_mm']:.2f} mm (one radius for all "
          f"landmarks would be {errors['global_radius_mm']:.2f} mm)")
    if unsteady_radius(errors):
        print(f"WARNING: {unsteady_radius(errors)}")
    print(f"written: {join(model, UNCERTAINTY_JSON)} (nnLandmark_predict now gives expected_error_mm and radius_mm)")


def print_thresholds(calibration: dict) -> None:
    width = max(len(n) for n in calibration)
    print(f"{'landmark':<{width}}  threshold  present  absent  sensitivity  specificity")
    for name, c in calibration.items():
        spec = "-" if c["specificity"] is None else f"{c['specificity']:.3f}"
        print(f"{name:<{width}}  {c['threshold']:9.4f}  {c['n_present']:7d}  {c['n_absent']:6d}  "
              f"{c['sensitivity']:11.3f}  {spec:>11}")
