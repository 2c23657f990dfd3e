"""The one evaluation pipeline: predictions + ground truth -> summary, tables, plots, detection, biometry, QC pictures.

Used by ``nnLandmark_evaluate`` (a prediction folder, or the pooled cross-validation folds), the fold's final
validation, the demo and the Python API alike (docs/design.md, "Metrics").
"""
from collections.abc import Mapping
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

from nnlandmark.errors import LandmarkError
from nnlandmark.evaluation.comparison import (common_pairs, compare, comparison_rows, method_names,
                                              write_comparison)
from nnlandmark.evaluation.biometry import biometry_errors, pairs_from_dataset, summarize_biometry, write_biometry_csv
from nnlandmark.evaluation.crossval import collect_folds, cv_ground_truth, cv_instance_truth, pool_folds
from nnlandmark.evaluation.detection import detection_summary
from nnlandmark.evaluation.ground_truth import read_ground_truth, read_instance_truth
from nnlandmark.evaluation.instances import (MATCH_MM, Instances, instance_points, instance_summary,
                                            instances_only_summary, with_instance_rows)
from nnlandmark.evaluation.metrics import coverage, radial_errors, summarize
from nnlandmark.evaluation.plots import errors_boxplot, reliability_plot, sdr_curve
from nnlandmark.evaluation.reliability import error_estimate_summary
from nnlandmark.evaluation.qc import qc_images, worst_cases, write_qc
from nnlandmark.evaluation.report import write_summary
from nnlandmark.io.atomic import read_json
from nnlandmark.io.predictions import Points, Presence, read_error_estimates, read_instances, read_predictions
from nnlandmark.landmark_set import Pair
from nnlandmark.paths import writable_folder

THRESHOLDS = (2, 2.5, 3, 4)
GroundTruth = Union[str, Path, Points, Tuple[Points, Optional[Presence]]]


class EvaluationReport(NamedTuple):
    summary: dict           # summary.json's content
    written: List[Path]     # the files written, summary.json first


def evaluate_points(pred: Points, truth: Points, thresholds=THRESHOLDS, pairs: Sequence[Pair] = (),
                    predicted_presence: Optional[Presence] = None, true_presence: Optional[Presence] = None):
    """(summary, radial error records, biometry records) for loaded landmarks; the summary has "detection" when both
    presences are known and something was absent, and "biometry" when pairs are given."""
    errors = radial_errors(pred, truth)
    summary = summarize(errors, thresholds, coverage(pred, truth))
    bio = biometry_errors(pred, truth, pairs) if pairs else []
    if pairs:
        summary["biometry"] = summarize_biometry(bio, pairs)
    if predicted_presence is not None and true_presence is not None:
        detection = detection_summary(predicted_presence, true_presence)
        if detection is not None:
            summary["detection"] = detection
    return summary, errors, bio


def _dataset_folder(gt) -> Optional[Path]:
    """The raw dataset folder when the ground truth is one."""
    if isinstance(gt, (str, Path)) and Path(gt).is_dir() and (Path(gt) / "dataset.json").is_file():
        return Path(gt)
    return None


def _loaded(gt: GroundTruth) -> Tuple[Points, Optional[Presence]]:
    if isinstance(gt, (str, Path)):
        return read_ground_truth(gt)
    if isinstance(gt, Mapping):
        return gt, None
    return gt


def evaluate_report(pred: Union[str, Path, Tuple[Points, Presence]], gt: GroundTruth, out_dir=None,
                    thresholds=THRESHOLDS, pairs: Optional[Sequence[Pair]] = None, qc: int = 0,
                    image_folders: Optional[Sequence] = None, plots: bool = True,
                    dataset: Optional[Path] = None, instance_truth: Optional[Instances] = None,
                    match_mm: float = MATCH_MM,
                    instance_detection: Optional[Dict[str, Tuple[float, float]]] = None,
                    instances: Optional[Dict[str, Dict[str, List[dict]]]] = None) -> EvaluationReport:
    """Evaluate a prediction folder (or loaded points and presence) against ground truth (a world landmarks JSON, a
    raw dataset folder, or loaded points with or without presence) and write the report into ``out_dir``:
    summary.json, per_landmark.csv, per_case.csv, biometry.csv (with pairs), errors_boxplot.png and sdr_curve.png
    (with ``plots``), and qc/CASE.png for the ``qc`` cases with the largest MRE.

    ``pairs`` default to the ``biometry_pairs`` of the raw ``dataset`` (default: ``gt`` when it is a raw dataset
    folder); so do the QC images (its imagesTr/imagesTs) unless ``image_folders`` are given. Everything that can fail
    is checked before the first file is written, and QC pictures before the summary, so a failed run leaves no
    summary behind. Multi-instance classes are judged against ``instance_truth`` (default: the raw ``dataset``'s)
    with pairs matched within ``match_mm`` (summary "instances"); ``instance_detection`` ({class: (threshold, NMS
    mm)}) first decodes predictions that list every candidate peak (a fold's validation) as a calibrated model
    would; ``instances`` (``read_instances``) are the predicted ones when ``pred`` is loaded points. A dataset of
    multi-instance classes only has no MRE: its summary is the instance scores (``instances_only_summary``), with
    summary.json alone and the QC pictures of the cases with the most misses and false alarms."""
    if out_dir is not None:
        out_dir = Path(writable_folder(str(out_dir), "output folder (-o)"))
    points, predicted_presence = read_predictions(pred) if isinstance(pred, (str, Path)) else pred
    coverage, estimates = read_error_estimates(pred) if isinstance(pred, (str, Path)) else (None, {})
    truth, true_presence = _loaded(gt)
    dataset = _dataset_folder(dataset or gt)
    if pairs is None:
        pairs = pairs_from_dataset(dataset) if dataset is not None else []
    else:
        _check_pair_names(pairs, truth, true_presence, points, predicted_presence)
    if instance_truth is None and dataset is not None:
        instance_truth = read_instance_truth(dataset)
    if instance_truth and isinstance(pred, (str, Path)):
        instances = read_instances(pred)
    found = instance_points(instances, instance_detection) if instance_truth and instances else {}
    scores = instance_summary(found, instance_truth, match_mm) if found else None
    if scores and not any(truth.values()):   # multi-instance classes only: no single landmark to measure
        summary, errors, bio = instances_only_summary(scores), [], []
    else:
        summary, errors, bio = evaluate_points(points, truth, thresholds, pairs, predicted_presence, true_presence)
        if scores:
            summary["instances"] = scores
    reliability = error_estimate_summary(errors, estimates, coverage) if estimates and errors else None
    if reliability:
        summary["error_estimates"] = reliability
    if out_dir is None:
        return EvaluationReport(summary, [])
    images = {}
    if qc > 0:
        if image_folders is None:
            if dataset is None:
                raise LandmarkError("QC pictures need the images: give their folders (-images DIR) or a raw dataset "
                                    "as ground truth (-gt)")
            image_folders = [dataset / "imagesTr", dataset / "imagesTs"]
        ending = read_json(dataset / "dataset.json").get("file_ending") if dataset is not None else None
        worst = summary["per_case"] or scores["errors_per_case"]   # classes only: most misses and false alarms
        images = qc_images(worst_cases(worst, qc), image_folders, ending)
    pictures = write_qc(images, *with_instance_rows(points, truth, found, instance_truth or {}, match_mm), out_dir,
                        summary["per_case"], estimates) if images else []
    written = write_summary(summary, out_dir)
    if pairs:
        written.append(write_biometry_csv(bio, out_dir))
    if plots and errors:
        written += [errors_boxplot(errors, out_dir / "errors_boxplot.png"),
                    sdr_curve({"prediction": errors}, out_dir / "sdr_curve.png", thresholds)]
        if reliability:
            written.append(reliability_plot(reliability["reliability"], out_dir / "reliability.png"))
    return EvaluationReport(summary, written + pictures)


def _check_pair_names(pairs: Sequence[Pair], *landmarks: Optional[Mapping]) -> None:
    """Biometry pairs given explicitly must name landmarks of the prediction or the ground truth: a typo would
    otherwise be measured in no case at all."""
    known = sorted(set().union(*(named for cases in landmarks if cases for named in cases.values())))
    for name in (n for pair in pairs for n in pair):
        if name not in known:
            raise LandmarkError(f"--pairs names unknown landmark '{name}'; known: {', '.join(known)}")


def evaluate(pred, gt: GroundTruth, out_dir=None, thresholds=THRESHOLDS, pairs: Optional[Sequence[Pair]] = None,
             **options) -> dict:
    """The summary of :func:`evaluate_report` (the same files are written)."""
    return evaluate_report(pred, gt, out_dir, thresholds, pairs, **options).summary


def crossval_report(model_folder, dataset, gt: Optional[GroundTruth] = None, out_dir=None,
                    **options) -> Tuple[EvaluationReport, List[str]]:
    """Every fold's validation predictions of a trained configuration pooled and evaluated as one set (default
    ``out_dir``: MODEL/crossval_evaluation; default ground truth: the raw dataset, else the preprocessed label maps),
    and the fold folder names. Multi-instance classes: every fold's candidates, decoded with ``instance_detection``
    (the model's calibration, fitted on these same folds), against the dataset's instances."""
    points, presence, folds = collect_folds(model_folder)
    source = None
    if gt is None:
        truth, true_presence, source = cv_ground_truth(dataset)
        gt = (truth, true_presence)
    out_dir = Path(model_folder) / "crossval_evaluation" if out_dir is None else out_dir
    instances = pool_folds(model_folder, read_instances)[0]
    if any(instances.values()):
        options = {"instance_truth": cv_instance_truth(dataset), "instances": instances, **options}
    return evaluate_report((points, presence), gt, out_dir, dataset=source, **options), folds


class ComparisonReport(NamedTuple):
    rows: List[dict]             # one per method: MRE, std, SDR on the common pairs
    n_common: int                # (case, landmark) pairs common to all methods and the ground truth
    left_out: dict               # {method: pairs it has beyond the common ones}
    written: List[Path]


def compare_report(folders: Sequence, gt: GroundTruth, out_dir, thresholds=THRESHOLDS) -> ComparisonReport:
    """Several prediction folders against one ground truth on the (case, landmark) pairs common to all:
    comparison.csv and sdr_curve.png in ``out_dir``; a folder given twice is refused (it would be compared with
    itself under one name)."""
    out_dir = Path(writable_folder(str(out_dir), "output folder (-o)"))
    resolved = [Path(f).resolve() for f in folders]
    for i, folder in enumerate(resolved):
        if folder in resolved[:i]:
            raise LandmarkError(f"-pred names the prediction folder {folders[i]} twice (also as "
                                f"{folders[resolved.index(folder)]}): give each folder once")
    truth = _loaded(gt)[0]
    methods = {name: read_predictions(f)[0] for name, f in zip(method_names(folders), folders)}
    errors = compare(methods, truth)
    n_common = sum(len(v) for v in common_pairs(methods, truth).values())
    left_out = {name: len(radial_errors(pred, truth)) - n_common for name, pred in methods.items()}
    rows = comparison_rows(errors)
    written = [write_comparison(rows, out_dir), sdr_curve(errors, out_dir / "sdr_curve.png", thresholds)]
    return ComparisonReport(rows, n_common, left_out, written)
