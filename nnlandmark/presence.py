"""Presence thresholds: when a prediction says an absent-capable landmark is "not there".

dataset.json may hold ``"landmarks_may_be_absent": ["needle tip", ...]`` (or ``true`` for all, see landmark_set). For
those, a case without the landmark's cube means "not there" and the network is trained towards an empty heatmap. For
every other landmark a missing cube means "not annotated": that (case, landmark) is left out of the loss instead.
Thresholds on the predicted likelihood (the heatmap maximum) come from cross-validation predictions and live next
to the model in ``landmark_thresholds.json``; a prediction below its threshold is reported ``"present": false``.

A multi-instance class (``"multi_instance"``) is decoded as every peak above a likelihood threshold, farther than an
NMS distance from a stronger one; both come from the cross-validation predictions too (maximum F1 of the matched
instances, ``instance_detection.json``): the final validation lists every candidate peak for that.
"""
import math
from itertools import combinations
from os.path import isfile, join
from typing import Dict, Iterable, Optional, Sequence, Tuple

import numpy as np

from nnlandmark.errors import LandmarkError
from nnlandmark.evaluation.crossval import cv_ground_truth, pool_folds
from nnlandmark.evaluation.instances import MATCH_MM, best_threshold
from nnlandmark.heatmaps import suppressed
from nnlandmark.io.atomic import read_json, write_json_atomic
from nnlandmark.io.predictions import read_instances, read_likelihoods
from nnlandmark.landmark_set import INSTANCES_JSON, THRESHOLDS_JSON, landmark_names, may_be_absent, multi_instance
from nnlandmark.paths import writable_folder


def calibrate_threshold(present: Sequence[float], absent: Sequence[float]) -> dict:
    """The likelihood threshold that best separates cases where the landmark is present from those where it is
    absent (maximum balanced accuracy, midway between neighbouring likelihoods); 0 when no absent case was seen,
    so that the landmark is always reported present."""
    present, absent = np.asarray(present, float), np.asarray(absent, float)
    result = {"n_present": int(present.size), "n_absent": int(absent.size)}
    if absent.size == 0 or present.size == 0:
        return {**result, "threshold": 0.0 if absent.size == 0 else 1.0,
                "sensitivity": 1.0 if absent.size == 0 else 0.0, "specificity": None if absent.size == 0 else 1.0}
    values = np.unique(np.concatenate([present, absent]))
    candidates = np.concatenate([[values[0] - 1e-6], (values[1:] + values[:-1]) / 2, [values[-1] + 1e-6]])
    sensitivity = (present[None, :] >= candidates[:, None]).mean(1)
    specificity = (absent[None, :] < candidates[:, None]).mean(1)
    best = int(np.argmax(sensitivity + specificity))
    return {**result, "threshold": float(candidates[best]), "sensitivity": float(sensitivity[best]),
            "specificity": float(specificity[best])}


def calibrate(likelihoods: Dict[str, Dict[str, float]], truth_present: Dict[str, Dict[str, bool]],
              names: Iterable[str]) -> Dict[str, dict]:
    """{case: {name: likelihood}} and {case: {name: present?}} (unknown pairs left out) -> {name: calibration}."""
    out = {}
    for name in names:
        pairs = [(likelihoods[c][name], truth_present[c][name]) for c in likelihoods
                 if name in likelihoods[c] and name in truth_present.get(c, {})]
        out[name] = calibrate_threshold([l for l, p in pairs if p], [l for l, p in pairs if not p])
    return out


def write_thresholds(model_folder: str, calibration: Dict[str, dict]) -> str:
    path = join(model_folder, THRESHOLDS_JSON)
    write_json_atomic(calibration, path)
    return path


def read_thresholds(model_folder: str) -> Optional[Dict[str, float]]:
    """{name: threshold} from the model folder, or None when the model was never calibrated; a threshold that is not
    a finite number would silently report every landmark absent (NaN) or present, so it is refused."""
    path = join(model_folder, THRESHOLDS_JSON)
    if not isfile(path):
        return None
    try:
        thresholds = {name: float(entry["threshold"]) for name, entry in read_json(path, "thresholds file").items()}
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise LandmarkError(f"{path} is not a thresholds file ({type(e).__name__}); run nnLandmark_calibrate "
                            f"again") from None
    for name, threshold in thresholds.items():
        if not math.isfinite(threshold):
            raise LandmarkError(f"{path}: threshold of '{name}' is {threshold}, not a finite number; run "
                                f"nnLandmark_calibrate again")
    return thresholds


def validation_likelihoods(model_folder) -> Dict[str, Dict[str, float]]:
    """{case: {name: likelihood}} of every fold's final validation predictions (fold_*/validation/CASE.json)."""
    return pool_folds(model_folder, read_likelihoods)[0]


def calibrate_model(model_folder: str, dataset) -> Dict[str, dict]:
    """Thresholds for the landmarks the model's dataset.json declares ``landmarks_may_be_absent``, from its
    cross-validation predictions against the dataset's ground truth; written next to the model and returned."""
    writable_folder(model_folder, "model folder")
    dataset_json = read_json(join(model_folder, "dataset.json"))
    declared = may_be_absent(dataset_json)
    if not declared:
        raise LandmarkError(f"{join(model_folder, 'dataset.json')} declares no 'landmarks_may_be_absent': every "
                            f"landmark is always reported present, nothing to calibrate")
    _, presence, source = cv_ground_truth(dataset)
    truth = {case: {n: p for n, p in names.items() if n in declared} for case, names in presence.items()}
    likelihoods = validation_likelihoods(model_folder)
    if not set(likelihoods) & set(truth):
        raise LandmarkError(f"no validation case of {model_folder} has ground truth in {source}: is it the model of "
                            f"this dataset?")
    calibration = calibrate(likelihoods, truth, landmark_names(dataset_json))
    write_thresholds(model_folder, calibration)
    return calibration


CANDIDATE_FLOOR = 0.05         # the final validation lists every local maximum above this, for the calibration
UNCALIBRATED_THRESHOLD = 0.5   # an uncalibrated model keeps peaks above this ...
UNCALIBRATED_NMS_VOXELS = 2.0  # ... farther apart than this many of its largest voxel spacing


def candidate_instances(dataset_json: dict) -> Dict[str, Tuple[float, float]]:
    """What the final validation decodes a multi-instance class with: every local maximum above CANDIDATE_FLOOR."""
    return {name: (CANDIDATE_FLOOR, 0.0) for name in multi_instance(dataset_json)}


def uncalibrated_instances(spacing) -> Tuple[float, float]:
    """(threshold, NMS mm) of a class whose model has no instance calibration."""
    return UNCALIBRATED_THRESHOLD, UNCALIBRATED_NMS_VOXELS * float(max(spacing))


def calibrate_instance_class(candidates: Dict[str, np.ndarray], likelihoods: Dict[str, np.ndarray],
                             truth: Dict[str, np.ndarray], match_mm: float = MATCH_MM) -> dict:
    """(threshold, NMS distance) of maximum F1 for one class from the validated cases' candidate peaks {case: (K, 3)
    world mm} and likelihoods against the true instances; the NMS distances tried are fractions of the smallest
    distance between two true instances of a case (the training data's own spacing), or of ``match_mm`` when no case
    has two. Of equally good distances the middle one, as ``best_threshold`` takes the middle of equal thresholds."""
    gaps = [np.linalg.norm(a - b) for true in truth.values() for a, b in combinations(np.reshape(true, (-1, 3)), 2)]
    scale = min(gaps) if gaps else match_mm
    results = []
    for nms_mm in scale * np.array([0.2, 0.35, 0.5, 0.65, 0.8]):
        kept = {case: suppressed(np.reshape(candidates[case], (-1, 3)), np.asarray(likelihoods[case]), nms_mm)
                for case in candidates}
        result = best_threshold({c: np.reshape(candidates[c], (-1, 3))[k] for c, k in kept.items()},
                                {c: np.asarray(likelihoods[c])[k] for c, k in kept.items()}, truth, match_mm,
                                floor=CANDIDATE_FLOOR)
        results.append({**result, "nms_mm": float(nms_mm)})
    best = [r for r in results if r["f1"] >= max(r["f1"] for r in results) - 1e-12]
    return {**best[len(best) // 2], "match_mm": match_mm, "n_cases": len(truth)}


def read_instance_detection(model_folder: str) -> Optional[Dict[str, Tuple[float, float]]]:
    """{class: (threshold, NMS mm)} from the model folder, or None where it was never calibrated."""
    path = join(model_folder, INSTANCES_JSON)
    if not isfile(path):
        return None
    try:
        detection = {name: (float(e["threshold"]), float(e["nms_mm"]))
                     for name, e in read_json(path, "instance calibration").items()}
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise LandmarkError(f"{path} is not an instance calibration ({type(e).__name__}); run nnLandmark_calibrate "
                            f"again") from None
    if not all(math.isfinite(v) for pair in detection.values() for v in pair):
        raise LandmarkError(f"{path} holds a non-finite threshold or distance; run nnLandmark_calibrate again")
    return detection


def calibrate_instances(model_folder: str, truth: Dict[str, Dict[str, np.ndarray]],
                        match_mm: float = MATCH_MM) -> Dict[str, dict]:
    """Threshold and NMS distance of each multi-instance class from every fold's validation candidates against
    ``truth`` ({case: {class: (K, 3)}}); written next to the model (instance_detection.json) and returned."""
    writable_folder(model_folder, "model folder")
    classes = multi_instance(read_json(join(model_folder, "dataset.json")))
    found = pool_folds(model_folder, read_instances)[0]
    cases = sorted(set(found) & set(truth))
    if not cases:
        raise LandmarkError(f"no validation case of {model_folder} has instance ground truth")
    calibration = {}
    for name in classes:
        entries = {case: found[case].get(name, []) for case in cases}
        calibration[name] = calibrate_instance_class(
            {c: np.array([e["world"] for e in entries[c]]).reshape(-1, 3) for c in cases},
            {c: np.array([e["likelihood"] for e in entries[c]], float) for c in cases},
            {c: np.reshape(truth[c].get(name, np.zeros((0, 3))), (-1, 3)) for c in cases}, match_mm)
    write_json_atomic(calibration, join(model_folder, INSTANCES_JSON))
    return calibration
