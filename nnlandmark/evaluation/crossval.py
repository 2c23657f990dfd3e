"""Pooled cross-validation: every fold's validation predictions of one trained configuration, as one set."""
import os
from pathlib import Path
from typing import Tuple

from nnlandmark.errors import LandmarkError
from nnlandmark.evaluation.io import load_predictions, read_ground_truth, read_label_maps
from nnlandmark.paths import dataset_name, require_path


def collect_folds(model_folder) -> Tuple[dict, list]:
    """({case: {name: xyz}} over all fold_*/validation folders, [fold folder names]); a case twice is an error."""
    model_folder = Path(model_folder)
    folds = sorted(p.parent for p in model_folder.glob("fold_*/validation") if p.is_dir())
    if not folds:
        raise LandmarkError(f"no fold_*/validation folder in {model_folder}: run the final validation first")
    pred = {}
    for fold in folds:
        for case, points in load_predictions(fold / "validation").items():
            if case in pred:
                raise LandmarkError(f"{fold / 'validation'}: case '{case}' is also validated in another fold")
            pred[case] = points
    return pred, [f.name for f in folds]


def cv_ground_truth(dataset) -> Tuple[dict, dict, Path]:
    """(points, presence, source) of the raw dataset if $nnUNet_raw has it, else of the label cubes in the
    preprocessed gt_segmentations (see read_ground_truth)."""
    name = dataset_name(dataset)
    raw = Path(os.environ["nnUNet_raw"]) / name if os.environ.get("nnUNet_raw") else None
    if raw is not None and raw.is_dir():
        return (*read_ground_truth(raw), raw)
    pre = Path(require_path("nnUNet_preprocessed")) / name
    return (*read_label_maps(pre / "dataset.json", [pre / "gt_segmentations"]), pre)
