"""Absent landmarks: which landmarks a dataset says may truly be absent, and per-landmark likelihood thresholds.

dataset.json may hold ``"landmarks_may_be_absent": ["needle tip", ...]`` (or ``true`` for all). For those, a case
without the landmark's cube means "not there" and the network is trained towards an empty heatmap. For every other
landmark a missing cube means "not annotated": that (case, landmark) is left out of the loss instead.
Thresholds on the predicted likelihood (the heatmap maximum) come from cross-validation predictions and live next
to the model in ``landmark_thresholds.json``; a prediction below its threshold is reported ``"present": false``.
"""
import json
from os.path import isfile, join
from typing import Dict, Iterable, List, Optional, Sequence, Set

import numpy as np

from nnlandmark.errors import LandmarkError

DATASET_KEY = "landmarks_may_be_absent"
THRESHOLDS_FILE = "landmark_thresholds.json"


def landmark_names(dataset_json: dict) -> List[str]:
    """Landmark names in label order (1..N)."""
    labels = {n: int(v) for n, v in dataset_json["labels"].items() if int(v) != 0}
    return sorted(labels, key=labels.get)


def may_be_absent(dataset_json: dict) -> Set[str]:
    """The landmarks whose absence in a case is real (validated against the labels)."""
    value = dataset_json.get(DATASET_KEY, [])
    names = landmark_names(dataset_json)
    if value is True:
        return set(names)
    if value is False:
        return set()
    if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
        raise LandmarkError(f"dataset.json '{DATASET_KEY}' must be a list of landmark names or true")
    unknown = [n for n in value if n not in names]
    if unknown:
        raise LandmarkError(f"dataset.json '{DATASET_KEY}' names '{unknown[0]}', which is not a landmark label")
    return set(value)


def annotated_in_cases(preprocessed_folder: str, dataset_json: dict) -> Dict[str, np.ndarray]:
    """{case: (N,) bool} whether each landmark may be trained on in that case: it has voxels in the preprocessed
    label map (nnU-Net's ``class_locations``), or its absence is declared real."""
    from glob import glob
    from os.path import basename
    from batchgenerators.utilities.file_and_folder_operations import load_pickle
    labels = {n: int(v) for n, v in dataset_json["labels"].items() if int(v) != 0}
    names = landmark_names(dataset_json)
    absent_ok = np.array([n in may_be_absent(dataset_json) for n in names])
    out = {}
    for path in glob(join(preprocessed_folder, "*.pkl")):
        locations = load_pickle(path).get("class_locations", {})
        present = np.array([len(locations.get(labels[n], [])) > 0 for n in names])
        out[basename(path)[:-len(".pkl")]] = present | absent_ok
    return out


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
    from nnlandmark.inference.prediction_files import write_json_atomic
    path = join(model_folder, THRESHOLDS_FILE)
    write_json_atomic(calibration, path)
    return path


def read_thresholds(model_folder: str) -> Optional[Dict[str, float]]:
    """{name: threshold} from the model folder, or None when the model was never calibrated."""
    path = join(model_folder, THRESHOLDS_FILE)
    if not isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return {name: float(entry["threshold"]) for name, entry in json.load(f).items()}
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as e:
        raise LandmarkError(f"{path} is not a thresholds file ({type(e).__name__}); run nnLandmark_calibrate "
                            f"again") from None
