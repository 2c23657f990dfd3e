"""Pooled cross-validation: every fold's validation predictions of one trained configuration, as one set."""
import os
from pathlib import Path
from typing import Tuple

from nnlandmark.errors import LandmarkError
from nnlandmark.evaluation.io import dataset_labels, read_json, load_ground_truth, load_label_folder, load_predictions
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


def cv_ground_truth(dataset) -> Tuple[dict, Path]:
    """The raw dataset's landmarks if $nnUNet_raw has it, else the label cubes in preprocessed gt_segmentations."""
    name = dataset_name(dataset)
    raw = Path(os.environ["nnUNet_raw"]) / name if os.environ.get("nnUNet_raw") else None
    if raw is not None and raw.is_dir():
        return load_ground_truth(raw), raw
    pre = Path(require_path("nnUNet_preprocessed")) / name
    info = read_json(pre / "dataset.json")
    ending = info.get("file_ending") if isinstance(info, dict) else None
    if not isinstance(ending, str) or not ending:
        raise LandmarkError(f"{pre / 'dataset.json'}: no 'file_ending'")
    gt = load_label_folder(pre / "gt_segmentations", dataset_labels(pre / "dataset.json", info), ending)
    if not gt:
        raise LandmarkError(f"no ground truth for {name}: neither {raw} nor label files in {pre / 'gt_segmentations'}")
    return gt, pre
