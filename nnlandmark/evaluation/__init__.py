"""Landmark evaluation in world millimetres: MRE, std, SDR, per-landmark and per-case tables (DESIGN.md §3)."""
from collections.abc import Mapping

from nnlandmark.evaluation.io import load_ground_truth, load_predictions
from nnlandmark.evaluation.metrics import RadialError, coverage, radial_errors, summarize
from nnlandmark.evaluation.report import format_table, warnings, write_summary

__all__ = ["evaluate", "load_predictions", "load_ground_truth", "radial_errors", "summarize", "coverage",
           "format_table", "write_summary", "warnings", "RadialError"]


def evaluate(pred_dir, gt, out_dir=None, thresholds=(2, 2.5, 3, 4)) -> dict:
    """Load predictions and ground truth (a path, or an already loaded {case: {name: xyz}}), summarise, write."""
    pred = load_predictions(pred_dir)
    truth = gt if isinstance(gt, Mapping) else load_ground_truth(gt)
    summary = summarize(radial_errors(pred, truth), thresholds, coverage(pred, truth))
    if out_dir is not None:
        write_summary(summary, out_dir)
    return summary
