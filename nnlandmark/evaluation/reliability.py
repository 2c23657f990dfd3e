"""How trustworthy the calibrated error estimates of a prediction folder were: empirical coverage of the radius,
Spearman correlation of expected and actual error, AUROC of the expected error for finding large errors, and the
reliability table behind the reliability plot (docs/design.md, "Uncertainty")."""
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from scipy.stats import mannwhitneyu, spearmanr

from nnlandmark.evaluation.metrics import RadialError

LARGE_ERROR_MM = (2.0, 4.0)   # AUROC of expected_error_mm for finding errors above these
RELIABILITY_BINS = 5

DEFINITIONS = {
    "radius_coverage": "observed coverage: share of evaluated landmarks whose true position lies within radius_mm of "
                       "the prediction (stated: the calibration's coverage).",
    "spearman": "Spearman rank correlation of expected_error_mm and the actual radial error.",
    "auroc": "AUROC@t: probability that a landmark with error above t mm has a larger expected_error_mm than one "
             "with error at most t mm (ties count half); null when one of the two groups is empty.",
    "reliability": "reliability: landmarks in equal-count bins of expected_error_mm, mean expected vs mean actual "
                   "error per bin.",
}

Estimates = Mapping[str, Mapping[str, Tuple[float, float]]]   # {case: {name: (expected_error_mm, radius_mm)}}


def auroc(scores: np.ndarray, positive: np.ndarray) -> Optional[float]:
    """Area under the ROC curve of ``scores`` for ``positive`` (the Mann-Whitney U statistic over n1 n0)."""
    if positive.all() or not positive.any():
        return None
    u = mannwhitneyu(scores[positive], scores[~positive], alternative="two-sided").statistic
    return float(u / (positive.sum() * (~positive).sum()))


def reliability_table(expected: np.ndarray, actual: np.ndarray, bins: int = RELIABILITY_BINS) -> List[dict]:
    """Equal-count bins of the expected error: their mean expected and mean actual error, and size."""
    order = np.argsort(expected, kind="stable")
    return [{"expected_mm": float(expected[part].mean()), "actual_mm": float(actual[part].mean()), "n": len(part)}
            for part in np.array_split(order, min(bins, len(order))) if len(part)]


def paired(errors: Sequence[RadialError], estimates: Estimates) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(actual, expected, radius) arrays of the evaluated pairs that carry an estimate."""
    rows = [(r.error_mm, *estimates[r.case][r.name]) for r in errors if r.name in estimates.get(r.case, {})]
    return tuple(np.array(column, float) for column in zip(*rows)) if rows else (np.empty(0),) * 3


def error_estimate_summary(errors: Sequence[RadialError], estimates: Estimates,
                           coverage: float) -> Optional[Dict]:
    """The summary's "error_estimates" section, None when no evaluated pair carries an estimate."""
    actual, expected, radius = paired(errors, estimates)
    if not actual.size:
        return None
    spearman = spearmanr(expected, actual).statistic if actual.size > 2 else float("nan")
    return {"n_pairs": int(actual.size), "radius_coverage_stated": coverage,
            "radius_coverage": float(np.mean(actual <= radius)), "median_radius_mm": float(np.median(radius)),
            "mean_expected_error_mm": float(expected.mean()), "mean_actual_error_mm": float(actual.mean()),
            "spearman": None if np.isnan(spearman) else float(spearman),
            "auroc": {str(t): auroc(expected, actual > t) for t in LARGE_ERROR_MM},
            "reliability": reliability_table(expected, actual), "definitions": dict(DEFINITIONS)}


def format_error_estimates(section: Mapping) -> str:
    """The lines nnLandmark_evaluate prints for the "error_estimates" section."""
    auc = "   ".join(f"AUROC@{t} mm: {'-' if v is None else f'{v:.3f}'}" for t, v in section["auroc"].items())
    spearman = "-" if section["spearman"] is None else f"{section['spearman']:.3f}"
    return (f"Error estimates ({section['n_pairs']} pairs): radius covers {100 * section['radius_coverage']:.1f} % "
            f"(stated {100 * section['radius_coverage_stated']:.0f} %), median radius "
            f"{section['median_radius_mm']:.2f} mm; Spearman {spearman}   {auc}")
