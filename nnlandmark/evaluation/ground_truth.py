"""Ground truth in one shape, ({case: {name: world LPS xyz}}, {case: {name: truly present?}}), from whatever the user
points at: a world landmarks JSON, or an nnU-Net raw dataset folder."""
from pathlib import Path
from typing import Tuple

from nnlandmark.errors import LandmarkError
from nnlandmark.io.predictions import Points, Presence, read_world_landmarks
from nnlandmark.labelmaps import read_label_maps
from nnlandmark.landmark_set import LANDMARKS_WORLD_JSON


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
