"""Landmark evaluation in world millimetres: MRE, std, SDR, per-landmark and per-case tables (DESIGN.md §3)."""
from collections.abc import Mapping
from pathlib import Path

from nnlandmark.evaluation.biometry import (biometry_errors, pairs_from_dataset, parse_pairs, summarize_biometry,
                                            write_biometry_csv)
from nnlandmark.evaluation.detection import detection_summary
from nnlandmark.evaluation.io import load_ground_truth, load_predictions, read_ground_truth, read_predictions
from nnlandmark.evaluation.metrics import RadialError, coverage, radial_errors, summarize
from nnlandmark.evaluation.report import format_table, warnings, write_summary

__all__ = ["evaluate", "evaluate_points", "load_predictions", "load_ground_truth", "read_predictions",
           "read_ground_truth", "radial_errors", "summarize",
           "coverage", "format_table", "write_summary", "warnings", "RadialError", "parse_pairs",
           "pairs_from_dataset"]


def evaluate_points(pred, truth, thresholds=(2, 2.5, 3, 4), pairs=()):
    """(summary, radial error records, biometry records) for loaded {case: {name: xyz}} landmarks."""
    errors = radial_errors(pred, truth)
    summary = summarize(errors, thresholds, coverage(pred, truth))
    bio = biometry_errors(pred, truth, pairs) if pairs else []
    if pairs:
        summary["biometry"] = summarize_biometry(bio, pairs)
    return summary, errors, bio


def evaluate(pred_dir, gt, out_dir=None, thresholds=(2, 2.5, 3, 4), pairs=None) -> dict:
    """Load predictions and ground truth (a path, or an already loaded {case: {name: xyz}}), summarise, write.

    ``pairs`` (biometry) defaults to the ``biometry_pairs`` of ``gt``'s dataset.json when gt is a raw dataset."""
    pred, predicted_presence = read_predictions(pred_dir)
    truth, true_presence = (gt, None) if isinstance(gt, Mapping) else read_ground_truth(gt)
    if pairs is None:
        pairs = [] if isinstance(gt, Mapping) or not Path(gt).is_dir() else pairs_from_dataset(gt)
    summary, _, bio = evaluate_points(pred, truth, thresholds, pairs)
    detection = detection_summary(predicted_presence, true_presence) if true_presence is not None else None
    if detection is not None:
        summary["detection"] = detection
    if out_dir is not None:
        write_summary(summary, out_dir)
        if pairs:
            write_biometry_csv(bio, out_dir)
    return summary
