"""Ground truth in one shape, ({case: {name: world LPS xyz}}, {case: {name: truly present?}}), from whatever the user
points at: a world landmarks JSON, or an nnU-Net raw dataset folder."""
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np

from nnlandmark.errors import LandmarkError
from nnlandmark.io.predictions import Points, Presence, read_world_landmarks
from nnlandmark.io.atomic import read_json
from nnlandmark.io.landmark_files import finite_point
from nnlandmark.labelmaps import read_label_instances, read_label_maps
from nnlandmark.landmark_set import INSTANCES_WORLD_JSON, LANDMARKS_WORLD_JSON, multi_instance


def read_ground_truth(path) -> Tuple[Points, Presence]:
    """A world-landmark JSON file, or an nnU-Net raw dataset folder (its all_landmarks_world.json if present, else its
    label cubes in labelsTr/labelsTs) -> (points, presence where the ground truth says so). A label map's missing cube
    counts as absent only for landmarks its dataset.json declares ``landmarks_may_be_absent``."""
    path = Path(path)
    if path.is_file():
        return read_world_landmarks(path)
    if not path.is_dir():
        raise LandmarkError(f"ground truth {path} does not exist")
    if (path / LANDMARKS_WORLD_JSON).is_file():
        return read_world_landmarks(path / LANDMARKS_WORLD_JSON)
    if not (path / "dataset.json").is_file():
        raise LandmarkError(f"{path} is neither a landmarks JSON file nor an nnU-Net raw dataset (no dataset.json)")
    return read_label_maps(path / "dataset.json", [path / "labelsTr", path / "labelsTs"])


def read_instance_truth(dataset) -> Optional[Dict[str, Dict[str, np.ndarray]]]:
    """{case: {class: (K, 3) world LPS}} of a raw dataset's multi-instance classes (its all_instances_world.json, else
    the blobs of its label maps); None for a dataset without such classes."""
    dataset = Path(dataset)
    if not multi_instance(read_json(dataset / "dataset.json")):
        return None
    path = dataset / INSTANCES_WORLD_JSON
    if not path.is_file():
        return read_label_instances(dataset / "dataset.json", [dataset / "labelsTr", dataset / "labelsTs"])
    table = read_json(path)
    table.pop("coordinate_system", None)
    return {str(case): {name: np.array([finite_point(p, f"{path}: {case}/{name}") for p in points]).reshape(-1, 3)
                        for name, points in classes.items()} for case, classes in table.items()}
