"""A calibrated error per predicted landmark: ``expected_error_mm`` and a radius that holds the true landmark for a
stated share of landmarks (``radius_mm``, default 90 %), fitted on the cross-validation predictions.

The model (docs/design.md, "Uncertainty") is a log-linear regression of the radial error on what every prediction
gives for free, with a per-landmark offset shrunk towards the pooled fit as far as the landmarks' differences are
unsure (empirical Bayes)::

    log(error + floor) = b . [1, likelihood, log half_max_radius_mm, second_peak, log(1 + prior_distance_mm)]
                         + offset[landmark] + residual

``expected_error_mm`` is the fitted mean (the log scale's mean corrected by the residuals' smearing factor, minus the
floor). The radius is conformal on the ratio ``(error + floor) / (expected + floor)``, each case in turn the
calibration split: its ratios are scored with the model fitted on all other cases, and the radius is the ratios'
``coverage`` quantile times the estimate. So it is wide where the model expects a large error and narrow elsewhere,
and its coverage holds on new cases like the cross-validation ones. Written next to the model in
``landmark_uncertainty.json``; the fold's final validation refits it from the folds validated so far.
"""
import math
from dataclasses import dataclass
from os.path import isfile, join
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from nnlandmark.errors import LandmarkError
from nnlandmark.evaluation.crossval import cv_ground_truth, pool_folds
from nnlandmark.evaluation.metrics import radial_errors
from nnlandmark.io.atomic import read_json, write_json_atomic
from nnlandmark.io.predictions import read_landmark_entries
from nnlandmark.landmark_set import UNCERTAINTY_JSON, single_landmarks
from nnlandmark.paths import writable_folder

FEATURES = ("likelihood", "log_half_max_radius_mm", "second_peak", "log1p_prior_distance_mm")
DEFAULT_COVERAGE = 0.9
MIN_CASES = 4          # each case's conformal ratios from a fit on at least three others
RIDGE = 1e-3           # keeps the slopes finite where a feature is constant (e.g. no prior in a one-stage model)


def feature_row(entry: Mapping, where: str = "") -> np.ndarray:
    """[1, *FEATURES] of one landmark of a prediction JSON (its "likelihood" and "peak" fields)."""
    peak = entry.get("peak")
    if not isinstance(peak, Mapping) or "half_max_radius_mm" not in peak:
        raise LandmarkError(f"{where} has no \"peak\" features (predicted by an older nnlandmark): validate the "
                            f"folds again (nnLandmark_train ... --val) before calibrating")
    values = [entry.get("likelihood"), peak.get("half_max_radius_mm"), peak.get("second_peak"),
              peak.get("prior_distance_mm") or 0.0]
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
        raise LandmarkError(f"{where}: likelihood and peak features must be finite numbers, got {values}")
    likelihood, radius, second, prior = (float(v) for v in values)
    return np.array([1.0, likelihood, math.log(max(radius, 1e-3)), second, math.log1p(max(prior, 0.0))])


def landmark_offsets(residual: np.ndarray, landmark: np.ndarray) -> Dict[str, float]:
    """Each landmark's mean residual weighed by n / (n + k) (empirical Bayes): k, the residuals' variance within a
    landmark over the variance of the landmarks' true offsets (method of moments), is how many cases a landmark
    needs before its own mean counts as much as the pooled fit. Landmarks that truly differ keep their own offsets
    after a few cases; landmarks whose means differ no more than chance makes them keep none."""
    names, index, counts = np.unique(landmark, return_inverse=True, return_counts=True)
    means = np.bincount(index, residual) / counts
    weights = np.zeros(len(names))
    if len(names) > 1 and len(residual) > len(names):
        within = ((residual - means[index]) ** 2).sum() / (len(residual) - len(names))
        between = means.var(ddof=1) - within * np.mean(1 / counts)
        if between > 0:
            weights = counts / (counts + within / between)
    return {str(name): float(w * m) for name, w, m in zip(names, weights, means)}


def _fit(x: np.ndarray, log_error: np.ndarray, landmark: np.ndarray) -> dict:
    """Ridge least squares (intercept unpenalised), then the landmarks' offsets of the residuals
    (``landmark_offsets``), then the smearing factor mean(exp(residual)) that turns the log-scale fit into a mean."""
    penalty = RIDGE * len(x) * np.diag([0.0] + [1.0] * (x.shape[1] - 1))
    coefficients = np.linalg.solve(x.T @ x + penalty, x.T @ log_error)
    residual = log_error - x @ coefficients
    offsets = landmark_offsets(residual, landmark)
    residual = residual - np.array([offsets[n] for n in landmark])
    return {"coefficients": coefficients.tolist(), "offsets": offsets,
            "smearing": float(np.mean(np.exp(residual)))}


def _scale(fit: dict, x: np.ndarray, landmark: Sequence[str]) -> np.ndarray:
    """exp(fitted log(error + floor)) x smearing: the estimate of error + floor."""
    offsets = np.array([fit["offsets"].get(n, 0.0) for n in landmark])
    return np.exp(x @ np.asarray(fit["coefficients"]) + offsets) * fit["smearing"]


def conformal_quantile(scores: np.ndarray, coverage: float) -> float:
    """The ceil((n + 1) coverage)-th smallest score: a new score from the same distribution stays below it with
    probability at least ``coverage`` (split-conformal prediction); infinite when n is too small for that."""
    n = len(scores)
    rank = math.ceil((n + 1) * coverage)
    return float(np.sort(scores)[rank - 1]) if rank <= n else math.inf


def fit_error_model(x: np.ndarray, errors_mm: np.ndarray, landmark: Sequence[str], case: Sequence[str],
                    coverage: float = DEFAULT_COVERAGE) -> dict:
    """The calibration from feature rows (``feature_row``), radial errors, and each row's landmark and case: the
    regression on all rows, the conformal quantile from leaving out one case at a time (see the module docstring)."""
    if not 0 < coverage < 1:
        raise LandmarkError(f"coverage must lie between 0 and 1 (e.g. 0.9), got {coverage}")
    landmark, case, errors_mm = np.asarray(landmark), np.asarray(case), np.asarray(errors_mm, float)
    cases = sorted(set(case.tolist()))
    if len(cases) < MIN_CASES:
        raise LandmarkError(f"{len(cases)} validated case(s) with ground truth: calibration needs at least "
                            f"{MIN_CASES}; validate more folds")
    floor = max(0.25 * float(np.median(errors_mm)), 1e-3)
    log_error = np.log(errors_mm + floor)
    scores = np.empty(len(x))
    for held_out in cases:
        rows = case == held_out
        fit = _fit(x[~rows], log_error[~rows], landmark[~rows])
        scores[rows] = (errors_mm[rows] + floor) / _scale(fit, x[rows], landmark[rows])
    quantile = conformal_quantile(scores, coverage)
    if not math.isfinite(quantile):
        raise LandmarkError(f"{len(x)} validated landmark(s) are too few for a {coverage:.0%} radius: it needs at "
                            f"least {math.ceil(coverage / (1 - coverage))}; validate more folds or lower --coverage")
    return {**_fit(x, log_error, landmark), "features": list(FEATURES), "floor_mm": floor, "coverage": coverage,
            "quantile": quantile, "n_pairs": len(x), "n_cases": len(cases),
            "global_radius_mm": float(np.quantile(errors_mm, coverage))}


def unsteady_radius(calibration: dict) -> str:
    """Why the conformal radius rests on a single calibration error, or '': with few validated landmarks the
    ceil((n + 1) coverage)-th smallest of n ratios is their largest, so one outlier widens every radius."""
    n = calibration["n_pairs"]
    if math.ceil((n + 1) * calibration["coverage"]) < n:
        return ""
    return (f"the radius rests on the largest of {n} calibration errors (one outlier widens every radius): "
            f"validate more folds")


def _estimates(calibration: dict, x: np.ndarray, landmark: Sequence[str]) -> Tuple[np.ndarray, np.ndarray]:
    """(expected error, radius) in mm of feature rows."""
    scale = _scale(calibration, x, landmark)
    floor = calibration["floor_mm"]
    return np.maximum(scale - floor, 0.0), np.maximum(calibration["quantile"] * scale - floor, 0.0)


@dataclass(frozen=True)
class ErrorModel:
    """A loaded calibration; :meth:`estimate` gives (expected error, radius) in mm for prediction entries."""
    calibration: dict

    @property
    def coverage(self) -> float:
        return float(self.calibration["coverage"])

    def estimate(self, entries: Mapping[str, Mapping]) -> Dict[str, Tuple[float, float]]:
        """{name: (expected_error_mm, radius_mm)} for {name: prediction entry with likelihood and peak}."""
        names = list(entries)
        if not names:
            return {}
        x = np.stack([feature_row(entries[n], f"landmark '{n}'") for n in names])
        expected, radius = _estimates(self.calibration, x, names)
        return {n: (float(expected[i]), float(radius[i])) for i, n in enumerate(names)}


def read_error_model(model_folder: str) -> Optional[ErrorModel]:
    """The model's calibration, or None where it was never calibrated; a damaged file is refused."""
    path = join(model_folder, UNCERTAINTY_JSON)
    if not isfile(path):
        return None
    calibration = read_json(path, "uncertainty calibration")
    try:
        numbers = [*calibration["coefficients"], *calibration["offsets"].values(), calibration["smearing"],
                   calibration["floor_mm"], calibration["quantile"], calibration["coverage"]]
        ok = len(calibration["coefficients"]) == len(FEATURES) + 1 and \
            all(isinstance(v, (int, float)) and math.isfinite(v) for v in numbers)
    except (KeyError, TypeError, AttributeError):
        ok = False
    if not ok:
        raise LandmarkError(f"{path} is not an uncertainty calibration of this nnlandmark (or holds a non-finite "
                            f"number); run nnLandmark_calibrate again")
    return ErrorModel(calibration)


def calibration_rows(model_folder: str, dataset) -> Tuple[np.ndarray, np.ndarray, List[str], List[str]]:
    """(feature rows, radial errors, landmarks, cases) of every validated fold's landmarks that are predicted present
    and annotated in the dataset's ground truth."""
    if not single_landmarks(read_json(join(model_folder, "dataset.json"), "dataset.json")):
        raise LandmarkError("the dataset has multi-instance classes only: there is no single landmark whose error to "
                            "estimate (the instances are calibrated by their threshold, instance_detection.json)")
    entries, _ = pool_folds(model_folder, read_landmark_entries)
    truth, _, source = cv_ground_truth(dataset)
    predicted = {case: {name: entry["world"] for name, entry in named.items() if entry.get("present", True)}
                 for case, named in entries.items()}
    errors = radial_errors(predicted, truth)
    if not errors:
        raise LandmarkError(f"no validation case of {model_folder} has ground truth in {source}: is it the model of "
                            f"this dataset?")
    x = np.stack([feature_row(entries[e.case][e.name], f"{model_folder}: validation of case '{e.case}', landmark "
                              f"'{e.name}'") for e in errors])
    return x, np.array([e.error_mm for e in errors]), [e.name for e in errors], [e.case for e in errors]


def calibrate_errors(model_folder: str, dataset, coverage: float = DEFAULT_COVERAGE) -> dict:
    """Fit on the cross-validation predictions of ``model_folder`` against ``dataset``'s ground truth, write
    ``landmark_uncertainty.json`` next to the model and return it (with the median radius the CV rows would get)."""
    writable_folder(model_folder, "model folder")
    x, errors, landmark, case = calibration_rows(model_folder, dataset)
    calibration = fit_error_model(x, errors, landmark, case, coverage)
    calibration["median_radius_mm"] = float(np.median(_estimates(calibration, x, landmark)[1]))
    write_json_atomic(calibration, join(model_folder, UNCERTAINTY_JSON))
    return calibration
