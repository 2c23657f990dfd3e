"""Pooled cross-validation: every fold's validation predictions of one trained configuration, as one set."""
import os
from pathlib import Path
from typing import Callable, Dict, List, Tuple, TypeVar

from nnlandmark.errors import LandmarkError
from nnlandmark.evaluation.ground_truth import read_ground_truth, read_instance_truth
from nnlandmark.io.predictions import Points, Presence, read_predictions
from nnlandmark.labelmaps import read_label_instances, read_label_maps
from nnlandmark.paths import dataset_name, require_path

T = TypeVar("T")


def pool_folds(model_folder, read: Callable[[Path], Dict[str, T]]) -> Tuple[Dict[str, T], List[str]]:
    """{case: read(FOLD/validation)[case]} over every fold_*/validation folder, and the fold folder names; a case
    validated in two folds is an error naming both, since pooling it twice would weigh it double."""
    model_folder = Path(model_folder)
    folds = sorted(p.parent for p in model_folder.glob("fold_*/validation") if p.is_dir())
    if not folds:
        raise LandmarkError(f"no fold_*/validation folder in {model_folder}: run the final validation first")
    pooled, fold_of = {}, {}
    for fold in folds:
        for case, value in read(fold / "validation").items():
            if case in fold_of:
                raise LandmarkError(f"case '{case}' is validated in both {fold_of[case]} and {fold.name} of "
                                    f"{model_folder}: the folds' validation sets overlap (check splits_final.json, "
                                    f"or delete one of the two validation/{case}.json)")
            pooled[case], fold_of[case] = value, fold.name
    return pooled, [f.name for f in folds]


def collect_folds(model_folder) -> Tuple[Points, Presence, List[str]]:
    """(points, predicted presence) over all fold_*/validation folders, and the fold folder names."""
    def per_case(folder):
        points, presence = read_predictions(folder)
        return {case: (points[case], presence[case]) for case in presence}
    pooled, folds = pool_folds(model_folder, per_case)
    return ({case: p for case, (p, _) in pooled.items()}, {case: q for case, (_, q) in pooled.items()}, folds)


def cv_ground_truth(dataset) -> Tuple[Points, Presence, Path]:
    """(points, presence, source) of the raw dataset if $nnUNet_raw has it, else of the label cubes in the
    preprocessed gt_segmentations (see read_ground_truth)."""
    name = dataset_name(dataset)
    raw = Path(os.environ["nnUNet_raw"]) / name if os.environ.get("nnUNet_raw") else None
    if raw is not None and raw.is_dir():
        return (*read_ground_truth(raw), raw)
    pre = Path(require_path("nnUNet_preprocessed")) / name
    return (*read_label_maps(pre / "dataset.json", [pre / "gt_segmentations"]), pre)


def cv_instance_truth(dataset):
    """{case: {class: (K, 3) world}} of the multi-instance classes, from the same source as ``cv_ground_truth``."""
    name = dataset_name(dataset)
    raw = Path(os.environ["nnUNet_raw"]) / name if os.environ.get("nnUNet_raw") else None
    if raw is not None and raw.is_dir():
        return read_instance_truth(raw)
    pre = Path(require_path("nnUNet_preprocessed")) / name
    return read_label_instances(pre / "dataset.json", [pre / "gt_segmentations"])
