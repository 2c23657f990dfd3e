"""Pooled cross-validation: every fold's validation predictions of one trained configuration, as one set."""
import os
from pathlib import Path
from typing import List, Tuple

from nnlandmark.errors import LandmarkError
from nnlandmark.evaluation.ground_truth import read_ground_truth
from nnlandmark.io.predictions import Points, Presence, read_predictions
from nnlandmark.labelmaps import read_label_maps
from nnlandmark.paths import dataset_name, require_path


def collect_folds(model_folder) -> Tuple[Points, Presence, List[str]]:
    """(points, predicted presence) over all fold_*/validation folders, and the fold folder names; a case validated
    in two folds is an error."""
    model_folder = Path(model_folder)
    folds = sorted(p.parent for p in model_folder.glob("fold_*/validation") if p.is_dir())
    if not folds:
        raise LandmarkError(f"no fold_*/validation folder in {model_folder}: run the final validation first")
    points, presence = {}, {}
    for fold in folds:
        fold_points, fold_presence = read_predictions(fold / "validation")
        for case in fold_points:
            if case in points:
                raise LandmarkError(f"{fold / 'validation'}: case '{case}' is also validated in another fold")
            points[case], presence[case] = fold_points[case], fold_presence[case]
    return points, presence, [f.name for f in folds]


def cv_ground_truth(dataset) -> Tuple[Points, Presence, Path]:
    """(points, presence, source) of the raw dataset if $nnUNet_raw has it, else of the label cubes in the
    preprocessed gt_segmentations (see read_ground_truth)."""
    name = dataset_name(dataset)
    raw = Path(os.environ["nnUNet_raw"]) / name if os.environ.get("nnUNet_raw") else None
    if raw is not None and raw.is_dir():
        return (*read_ground_truth(raw), raw)
    pre = Path(require_path("nnUNet_preprocessed")) / name
    return (*read_label_maps(pre / "dataset.json", [pre / "gt_segmentations"]), pre)
