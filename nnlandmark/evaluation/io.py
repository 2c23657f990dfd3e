"""Read predictions and ground truth into one shape, {case: {name: world LPS xyz}}, so metrics never see files."""
import json
from pathlib import Path
from typing import Dict

import numpy as np
import SimpleITK as sitk
from tqdm import tqdm

from nnlandmark.dataset_conversion.labelmap import landmarks_from_labelmap
from nnlandmark.errors import LandmarkError
from nnlandmark.geometry import Geometry, lps_to_ras

WORLD_JSON = "all_landmarks_world.json"


def read_json(path: Path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise LandmarkError(f"cannot read JSON file {path}: {e}") from None


def _xyz(value, where: str) -> np.ndarray:
    try:
        xyz = np.asarray(value, float)
    except (TypeError, ValueError):
        xyz = None
    if xyz is None or xyz.shape != (3,) or not np.all(np.isfinite(xyz)):
        raise LandmarkError(f"{where}: expected three finite numbers [x, y, z], got {value!r}")
    return xyz


def _prediction_files(pred_dir):
    """(path, case, system, landmarks dict) of every prediction JSON in a folder (files without "landmarks",
    e.g. summary.json, are not predictions)."""
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise LandmarkError(f"prediction folder {pred_dir} does not exist")
    seen = set()
    for path in sorted(pred_dir.glob("*.json")):
        data = read_json(path)
        if path.name == "summary.json" or not isinstance(data, dict) or "landmarks" not in data:
            continue
        system = data.get("coordinate_system")
        if system not in ("LPS", "RAS"):
            raise LandmarkError(f"{path}: coordinate_system must be 'LPS' or 'RAS', got {system!r}")
        if not isinstance(data["landmarks"], dict):
            raise LandmarkError(f"{path}: 'landmarks' must be an object {{name: {{'world': [x, y, z], ...}}}}")
        case = str(data.get("case") or path.name[:-len(".json")])
        if case in seen:
            raise LandmarkError(f"{path}: case '{case}' is predicted in more than one file")
        seen.add(case)
        yield path, case, system, data["landmarks"]
    if not seen:
        raise LandmarkError(f"no prediction JSON files (with a 'landmarks' key) in {pred_dir}")


def _predicted_present(entry) -> bool:
    return isinstance(entry, dict) and entry.get("world") is not None and entry.get("present", True) is not False


def read_predictions(pred_dir):
    """({case: {name: world LPS}} of every landmark predicted present, {case: {name: predicted present?}} of every
    landmark a file lists), from one pass over the folder. ``"present": false`` and a missing position mean the
    model says the landmark is not there."""
    preds, presence = {}, {}
    for path, case, system, landmarks in _prediction_files(pred_dir):
        presence[case] = {name: _predicted_present(entry) for name, entry in landmarks.items()}
        points = {}
        for name, entry in landmarks.items():
            if presence[case][name]:
                xyz = _xyz(entry["world"], f"{path}: landmark '{name}'")
                points[name] = lps_to_ras(xyz) if system == "RAS" else xyz
        preds[case] = points
    return preds, presence


def load_predictions(pred_dir) -> Dict[str, Dict[str, np.ndarray]]:
    """{case: {name: world LPS}} of every landmark predicted present (see read_predictions)."""
    return read_predictions(pred_dir)[0]


def _world_json(path: Path):
    """(points, presence) of a landmarks JSON: null marks a landmark truly absent from that case."""
    data = read_json(path)
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise LandmarkError(f"{path}: expected {{case: {{name: [x, y, z]}}}} in world LPS mm")
    points = {str(case): {name: _xyz(xyz, f"{path}: {case}/{name}") for name, xyz in landmarks.items()
                          if xyz is not None} for case, landmarks in data.items()}
    presence = {str(case): {name: xyz is not None for name, xyz in landmarks.items()}
                for case, landmarks in data.items()}
    return points, presence


def dataset_labels(dataset_json: Path, info: dict) -> Dict[str, int]:
    labels = info.get("labels") if isinstance(info, dict) else None
    if not isinstance(labels, dict):
        raise LandmarkError(f"{dataset_json}: no 'labels' mapping")
    out = {name: value for name, value in labels.items() if name != "background"}
    if not out or not all(isinstance(v, int) and v > 0 for v in out.values()):
        raise LandmarkError(f"{dataset_json}: 'labels' must map landmark names to positive integers")
    return out


def load_label_folder(folder, labels: Dict[str, int], ending: str) -> Dict[str, Dict[str, np.ndarray]]:
    """Every ``CASE<ending>`` label map in a folder -> world landmarks (cube centres of mass)."""
    gt = {}
    for file in tqdm(sorted(Path(folder).glob(f"*{ending}")), desc=f"reading label maps in {Path(folder).name}",
                     leave=False):
        try:
            image = sitk.ReadImage(str(file))
        except RuntimeError as e:
            raise LandmarkError(f"cannot read label file {file}: {' '.join(str(e).split())[:300]}") from None
        geometry = Geometry.of_image(image)
        index = landmarks_from_labelmap(sitk.GetArrayFromImage(image), labels)
        gt[file.name[:-len(ending)]] = {name: geometry.index_to_world(ijk) for name, ijk in index.items()}
    return gt


def read_ground_truth(path):
    """A world-landmark JSON file, or an nnU-Net raw dataset folder (its JSON if present, else its label cubes) ->
    ({case: {name: world LPS}}, {case: {name: truly present?}} where the ground truth says so). A label map's missing
    cube counts as absent only for landmarks its dataset.json declares ``landmarks_may_be_absent`` (otherwise it just
    means "not annotated")."""
    path = Path(path)
    if path.is_file():
        return _world_json(path)
    if not path.is_dir():
        raise LandmarkError(f"ground truth {path} does not exist")
    if (path / WORLD_JSON).is_file():
        return _world_json(path / WORLD_JSON)
    if not (path / "dataset.json").is_file():
        raise LandmarkError(f"{path} is neither a landmarks JSON file nor an nnU-Net raw dataset (no dataset.json)")
    return read_label_maps(path / "dataset.json", [path / "labelsTr", path / "labelsTs"])


def read_label_maps(dataset_json: Path, folders):
    """(points, presence) from the label maps in ``folders`` of the dataset ``dataset_json`` describes; a case in
    two folders is an error, no label map at all too."""
    from nnlandmark.presence import may_be_absent
    info = read_json(dataset_json)
    labels = dataset_labels(dataset_json, info)
    ending = info.get("file_ending")
    if not isinstance(ending, str) or not ending:
        raise LandmarkError(f"{dataset_json}: no 'file_ending'")
    absent_ok = may_be_absent(info)
    gt, presence = {}, {}
    for folder in folders:
        for case, landmarks in load_label_folder(folder, labels, ending).items():
            if case in gt:
                raise LandmarkError(f"{folder}: case '{case}' appears in more than one of {[str(f) for f in folders]}")
            gt[case] = landmarks
            presence[case] = {n: n in landmarks for n in labels if n in landmarks or n in absent_ok}
    if not gt:
        raise LandmarkError(f"no label files ending in '{ending}' in {', '.join(str(f) for f in folders)}")
    return gt, presence


def load_ground_truth(path) -> Dict[str, Dict[str, np.ndarray]]:
    """{case: {name: world LPS}} (see read_ground_truth)."""
    return read_ground_truth(path)[0]
