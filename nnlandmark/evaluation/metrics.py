"""Radial error, MRE, std and SDR in world millimetres, with the definitions stated (docs/design.md, "Metrics")."""
from typing import Dict, Iterable, List, Mapping, NamedTuple, Sequence

import numpy as np

from nnlandmark.errors import LandmarkError

Landmarks = Mapping[str, Mapping[str, Sequence[float]]]  # {case: {name: world xyz (LPS mm)}}

DEFINITIONS = {
    "radial_error": "Radial error is the Euclidean distance in mm between predicted and true world (LPS) positions.",
    "mre": "MRE is the micro mean radial error in world mm over all evaluated (case, landmark) pairs.",
    "std": "std is the population standard deviation (ddof 0) of the pooled radial errors in mm.",
    "sdr": "SDR@t is the percentage of evaluated (case, landmark) pairs with radial error <= t mm.",
    "missing": "Landmarks absent from the ground truth are excluded and listed; so are ground-truth "
               "landmarks that were not predicted.",
}


class RadialError(NamedTuple):
    case: str
    name: str
    error_mm: float


def radial_errors(pred: Landmarks, gt: Landmarks) -> List[RadialError]:
    """One record per (case, landmark) present on both sides, so absent ground truth never counts."""
    records = []
    for case in sorted(set(pred) & set(gt)):
        for name in sorted(set(pred[case]) & set(gt[case])):
            d = np.asarray(pred[case][name], float) - np.asarray(gt[case][name], float)
            records.append(RadialError(case, name, float(np.sqrt(np.sum(d * d)))))
    return records


def coverage(pred: Landmarks, gt: Landmarks) -> Dict[str, list]:
    """What was left out of the comparison, so a report can say so instead of hiding it."""
    both = sorted(set(pred) & set(gt))
    names_pred = set().union(*(pred[c] for c in pred)) if pred else set()
    names_gt = set().union(*(gt[c] for c in gt)) if gt else set()
    return {
        "cases_only_in_prediction": sorted(set(pred) - set(gt)),
        "cases_only_in_ground_truth": sorted(set(gt) - set(pred)),
        "landmarks_only_in_prediction": sorted(names_pred - names_gt),
        "landmarks_only_in_ground_truth": sorted(names_gt - names_pred),
        "missing_in_prediction": [f"{c}/{n}" for c in both for n in sorted(set(gt[c]) - set(pred[c]))],
        "missing_in_ground_truth": [f"{c}/{n}" for c in both for n in sorted(set(pred[c]) - set(gt[c]))],
    }


def _nothing_in_common(info: dict) -> str:
    """Why no (case, landmark) pair could be compared, naming what each side has."""
    def some(items):
        return ", ".join(list(items)[:4]) + (", ..." if len(items) > 4 else "")
    if info.get("landmarks_only_in_prediction") and info.get("landmarks_only_in_ground_truth"):
        return (f"prediction and ground truth share no landmark name (prediction: "
                f"{some(info['landmarks_only_in_prediction'])}; ground truth: "
                f"{some(info['landmarks_only_in_ground_truth'])})")
    if info.get("cases_only_in_prediction") and info.get("cases_only_in_ground_truth"):
        return (f"prediction and ground truth share no case (prediction: {some(info['cases_only_in_prediction'])}; "
                f"ground truth: {some(info['cases_only_in_ground_truth'])})")
    return "no (case, landmark) pair is present in both prediction and ground truth"


def _pct(errors: np.ndarray, t: float) -> float:
    return float(100.0 * np.mean(errors <= t))


def summarize(errors: Iterable[RadialError], thresholds=(2, 2.5, 3, 4), coverage_info=None) -> dict:
    """Pooled (micro) statistics plus per-landmark and per-case tables, ready for JSON."""
    records = [RadialError(*r) for r in errors]
    if not records:
        raise LandmarkError(_nothing_in_common(coverage_info or {}))
    e = np.array([r.error_mm for r in records], float)
    summary = {
        "mre_mm": float(e.mean()), "std_mm": float(e.std(ddof=0)),
        "median_mm": float(np.median(e)), "max_mm": float(e.max()),
        "sdr": {str(float(t)): _pct(e, float(t)) for t in thresholds},
        "per_landmark": {}, "per_case": {},
        "n_cases": len({r.case for r in records}), "n_landmarks": len({r.name for r in records}),
        "n_pairs": len(records),
    }
    for name in sorted({r.name for r in records}):
        x = np.array([r.error_mm for r in records if r.name == name])
        summary["per_landmark"][name] = {"mre_mm": float(x.mean()), "std_mm": float(x.std(ddof=0)), "n": len(x)}
    for case in sorted({r.case for r in records}):
        summary["per_case"][case] = float(np.mean([r.error_mm for r in records if r.case == case]))
    summary.update(coverage_info or {})
    summary["definitions"] = dict(DEFINITIONS)
    return summary
