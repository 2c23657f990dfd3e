"""nnLandmark_calibrate -d ID [-tr TRAINER] [-p PLANS] [-c CONFIG]: per-landmark presence thresholds from the
cross-validation predictions, written next to the model (landmark_thresholds.json) for nnLandmark_predict."""
import argparse
from pathlib import Path

from nnlandmark.commands._cli import user_errors_as_one_line
from nnlandmark.errors import LandmarkError


def _likelihoods(model: Path) -> dict:
    from nnlandmark.evaluation.io import read_json
    likelihoods = {}
    for path in sorted(model.glob("fold_*/validation/*.json")):
        data = read_json(path)
        if isinstance(data, dict) and isinstance(data.get("landmarks"), dict):
            likelihoods[str(data.get("case") or path.stem)] = {
                name: float(entry["likelihood"]) for name, entry in data["landmarks"].items()
                if isinstance(entry, dict) and entry.get("likelihood") is not None}
    if not likelihoods:
        raise LandmarkError(f"no fold_*/validation/CASE.json in {model}: train (or run --val on) the folds first")
    return likelihoods


@user_errors_as_one_line
def main(argv=None):
    parser = argparse.ArgumentParser(description="Calibrate presence thresholds on the cross-validation predictions "
                                                 "of the landmarks dataset.json declares 'landmarks_may_be_absent'.")
    parser.add_argument("-d", required=True, help="dataset name or ID")
    parser.add_argument("-tr", default="nnLandmarkTrainer")
    parser.add_argument("-p", default="nnUNetPlans")
    parser.add_argument("-c", default="3d_fullres")
    args = parser.parse_args(argv)
    from nnlandmark.evaluation.crossval import cv_ground_truth
    from nnlandmark.evaluation.io import read_json
    from nnlandmark.paths import model_folder
    from nnlandmark.presence import calibrate, landmark_names, may_be_absent, write_thresholds
    model = Path(model_folder(args.d, args.tr, args.p, args.c))
    dataset_json = read_json(model / "dataset.json")
    declared = may_be_absent(dataset_json)
    if not declared:
        raise LandmarkError(f"{model / 'dataset.json'} declares no 'landmarks_may_be_absent': every landmark is "
                            f"always reported present, nothing to calibrate")
    _, presence, _ = cv_ground_truth(args.d)
    truth = {case: {n: p for n, p in names.items() if n in declared} for case, names in presence.items()}
    calibration = calibrate(_likelihoods(model), truth, landmark_names(dataset_json))
    path = write_thresholds(str(model), calibration)
    width = max(len(n) for n in calibration)
    print(f"{'landmark':<{width}}  threshold  present  absent  sensitivity  specificity")
    for name, c in calibration.items():
        spec = "-" if c["specificity"] is None else f"{c['specificity']:.3f}"
        print(f"{name:<{width}}  {c['threshold']:9.4f}  {c['n_present']:7d}  {c['n_absent']:6d}  "
              f"{c['sensitivity']:11.3f}  {spec:>11}")
    print(f"written: {path} (nnLandmark_predict now reports \"present\": false below these thresholds)")
