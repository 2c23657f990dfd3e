"""Multi-instance classes judged as detections: each case's predicted instances of a class matched one-to-one to its
true instances by the Hungarian algorithm (scipy's ``linear_sum_assignment``) on their distances, a pair counting
only within ``match_mm``; precision, recall, F1, the mean radial error of the matched pairs and the count error."""
from typing import Dict, List, Mapping, Optional, Tuple

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

from nnlandmark.heatmaps import suppressed

MATCH_MM = 4.0         # default: a predicted instance farther than this from every true one is a false positive
MAX_THRESHOLDS = 400   # likelihood thresholds tried by best_threshold

Instances = Mapping[str, Mapping[str, np.ndarray]]   # {case: {class: (K, 3) world LPS mm}}


def matched_pairs(predicted: np.ndarray, truth: np.ndarray, match_mm: float = MATCH_MM) -> Tuple[np.ndarray,
                                                                                                     np.ndarray]:
    """Row indices into ``predicted`` and ``truth`` (K, 3) of the one-to-one pairs, within ``match_mm``, that
    minimise their total distance."""
    predicted, truth = np.reshape(predicted, (-1, 3)), np.reshape(truth, (-1, 3))
    if not len(predicted) or not len(truth):
        return np.zeros(0, int), np.zeros(0, int)
    distance = cdist(predicted, truth)
    cost = np.where(distance <= match_mm, distance, 1e6 + distance)   # an unmatched pair never beats a match
    rows, cols = linear_sum_assignment(cost)
    within = distance[rows, cols] <= match_mm
    return rows[within], cols[within]


def matched_distances(predicted: np.ndarray, truth: np.ndarray, match_mm: float = MATCH_MM) -> np.ndarray:
    """Distances (mm) of the one-to-one pairs, within ``match_mm``, that minimise their total distance."""
    rows, cols = matched_pairs(predicted, truth, match_mm)
    return np.linalg.norm(np.reshape(predicted, (-1, 3))[rows] - np.reshape(truth, (-1, 3))[cols], axis=1)


def _scores(tp: int, fp: int, fn: int, distances=(), count_errors=()) -> dict:
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = _f1(tp, fp, fn) if tp + fp + fn else None
    return {"tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall, "f1": f1,
            "matched_mre_mm": float(np.mean(distances)) if len(distances) else None,
            "mean_abs_count_error": float(np.mean(np.abs(count_errors))) if len(count_errors) else None}


def instance_summary(predicted: Instances, truth: Instances, match_mm: float = MATCH_MM) -> Optional[dict]:
    """{"match_mm", "per_class": {class: scores}, "pooled": scores, "errors_per_case": {case: false alarms + misses}}
    over the cases and classes both sides have; None when they share none."""
    per_class, pooled = {}, {"tp": 0, "fp": 0, "fn": 0, "d": [], "count": []}
    errors_per_case: Dict[str, int] = {}
    classes = sorted({c for case in truth.values() for c in case})
    for name in classes:
        tp = fp = fn = 0
        distances, counts = [], []
        for case in sorted(set(predicted) & set(truth)):
            if name not in predicted[case] or name not in truth[case]:
                continue
            found, true = np.reshape(predicted[case][name], (-1, 3)), np.reshape(truth[case][name], (-1, 3))
            matched = matched_distances(found, true, match_mm)
            tp, fp, fn = tp + len(matched), fp + len(found) - len(matched), fn + len(true) - len(matched)
            errors_per_case[case] = errors_per_case.get(case, 0) + len(found) + len(true) - 2 * len(matched)
            distances += matched.tolist()
            counts.append(len(found) - len(true))
        if counts:
            per_class[name] = _scores(tp, fp, fn, distances, counts)
            for key, value in (("tp", tp), ("fp", fp), ("fn", fn)):
                pooled[key] += value
            pooled["d"] += distances
            pooled["count"] += counts
    if not per_class:
        return None
    return {"match_mm": match_mm, "per_class": per_class,
            "pooled": _scores(pooled["tp"], pooled["fp"], pooled["fn"], pooled["d"], pooled["count"]),
            "errors_per_case": errors_per_case}


INSTANCES_ONLY = ("No single landmark: the dataset has multi-instance classes only, judged by instances matched "
                  "one-to-one (Hungarian) within match_mm: precision, recall, F1, the MRE of the matched pairs and the "
                  "count error per case.")


def instances_only_summary(scores: dict) -> dict:
    """The summary of a dataset of multi-instance classes only: the instance scores (``instance_summary``) and no
    single-landmark statistics (empty tables, no MRE)."""
    return {"n_cases": len(scores["errors_per_case"]), "per_landmark": {}, "per_case": {}, "instances": scores,
            "definitions": {"instances": INSTANCES_ONLY}}


def best_threshold(candidates: Mapping[str, np.ndarray], likelihoods: Mapping[str, np.ndarray],
                   truth: Mapping[str, np.ndarray], match_mm: float = MATCH_MM, floor: float = 0.0) -> Dict[str, float]:
    """The likelihood threshold of maximum F1 over the cases {case: candidates (K, 3)}, {case: their likelihoods},
    {case: true instances}: each case's candidates at or above a threshold matched to its truth. Of the widest range
    of thresholds with that F1 it takes the middle, as far from the true peaks as from the false ones: with clean
    candidates every threshold from ``floor`` (the lowest likelihood listed) to the weakest true peak is best, and
    that edge itself misses every weaker peak of a new case."""
    values = np.unique(np.concatenate([np.zeros(0), *[np.asarray(v, float) for v in likelihoods.values()]]))
    # keep-set k: the candidates at or above values[k] (k = len: none), for any threshold in (lower[k], upper[k]]
    lower = np.concatenate([[min([floor, *values[:1]])], values])
    upper = np.concatenate([values, [max([1.0, *values[-1:]]) + 1e-6]])
    kept_sets = np.arange(len(lower))
    if len(kept_sets) > MAX_THRESHOLDS:   # many cases: evenly spaced in rank, the matching is the cost
        kept_sets = kept_sets[np.linspace(0, len(kept_sets) - 1, MAX_THRESHOLDS).round().astype(int)]

    def scores(t: float) -> Tuple[int, int, int]:
        tp = fp = fn = 0
        for case, true in truth.items():
            keep = np.asarray(likelihoods.get(case, np.zeros(0))) >= t
            found = np.reshape(candidates.get(case, np.zeros((0, 3))), (-1, 3))[keep]
            matched = len(matched_distances(found, true, match_mm))
            tp, fp, fn = tp + matched, fp + len(found) - matched, fn + len(np.reshape(true, (-1, 3))) - matched
        return tp, fp, fn

    f1 = np.array([_f1(*scores(upper[k])) for k in kept_sets])
    best = np.flatnonzero(f1 >= f1.max() - 1e-12)
    runs = np.split(best, np.flatnonzero(np.diff(best) > 1) + 1)   # contiguous ranges of keep-sets
    widest = max(runs, key=lambda run: (upper[kept_sets[run[-1]]] - lower[kept_sets[run[0]]], run[-1]))
    threshold = float((lower[kept_sets[widest[0]]] + upper[kept_sets[widest[-1]]]) / 2)
    counts = scores(threshold)
    result = _scores(*counts)
    return {"threshold": threshold, "f1": _f1(*counts), "precision": result["precision"], "recall": result["recall"]}


def _f1(tp: int, fp: int, fn: int) -> float:
    """F1, 1 where there is nothing to find and nothing was found."""
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0


def instance_points(instances: Dict[str, Dict[str, List[dict]]],
                    detection: Optional[Dict[str, Tuple[float, float]]] = None) -> Dict[str, Dict[str, np.ndarray]]:
    """{case: {class: (K, 3) world}} of ``read_instances``; with ``detection`` ({class: (threshold, NMS mm)}) only
    the instances at or above the threshold that greedy non-maximum suppression keeps (strongest first)."""
    points = {}
    for case, named in instances.items():
        points[case] = {}
        for name, entries in named.items():
            world = np.array([e["world"] for e in entries], float).reshape(-1, 3)
            if detection and name in detection:
                threshold, nms_mm = detection[name]
                likelihood = np.array([e["likelihood"] for e in entries], float)
                kept = [i for i in suppressed(world, likelihood, nms_mm) if likelihood[i] >= threshold]
                world = world[kept].reshape(-1, 3)
            points[case][name] = world
    return points


def format_instances(section: dict) -> str:
    """The "instances" summary as a table."""
    def cell(value, fmt):
        return "-" if value is None else format(value, fmt)
    rows = {**section["per_class"], "pooled": section["pooled"]}
    width = max(len(n) for n in rows)
    lines = [f"Multi-instance classes, instances matched within {section['match_mm']:g} mm (Hungarian):",
             f"{'class':<{width}}  {'TP':>5}  {'FP':>5}  {'FN':>5}  precision  recall     F1  matched MRE (mm)  "
             f"|count error|"]
    for name, r in rows.items():
        lines.append(f"{name:<{width}}  {r['tp']:>5}  {r['fp']:>5}  {r['fn']:>5}  {cell(r['precision'], '9.3f')}  "
                     f"{cell(r['recall'], '6.3f')}  {cell(r['f1'], '5.3f')}  {cell(r['matched_mre_mm'], '16.3f')}  "
                     f"{cell(r['mean_abs_count_error'], '13.2f')}")
    return "\n".join(lines)


def with_instance_rows(points: Mapping[str, Mapping], truth: Mapping[str, Mapping], found: Instances,
                       true_instances: Instances, match_mm: float = MATCH_MM) -> Tuple[dict, dict]:
    """``points`` and ``truth`` ({case: {name: world}}, e.g. for QC pictures) with each case's instances added as
    rows 'CLASS #k': first the matched pairs (the same k on both sides), then the unmatched predictions and the
    missed true instances."""
    points, truth = {c: dict(p) for c, p in points.items()}, {c: dict(t) for c, t in truth.items()}
    for case in set(found) | set(true_instances):
        predicted, true = found.get(case, {}), true_instances.get(case, {})
        for name in sorted(set(predicted) | set(true)):
            p, t = np.reshape(predicted.get(name, []), (-1, 3)), np.reshape(true.get(name, []), (-1, 3))
            rows, cols = matched_pairs(p, t, match_mm)
            order = list(zip(rows.tolist(), cols.tolist())) + \
                [(r, None) for r in range(len(p)) if r not in rows] + [(None, c) for c in range(len(t)) if c not in cols]
            for k, (r, c) in enumerate(order, 1):
                if r is not None:
                    points.setdefault(case, {})[f"{name} #{k}"] = p[r]
                if c is not None:
                    truth.setdefault(case, {})[f"{name} #{k}"] = t[c]
    return points, truth
