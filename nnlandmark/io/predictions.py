"""The per-case prediction JSON (the schema other tools read), its extra formats, and world-landmark JSON files.

Everything here reads and writes world LPS millimetres; files in RAS are converted on reading.
"""
import os
from os.path import join
from pathlib import Path
from typing import Dict, Iterable, List, Tuple

import numpy as np

from nnlandmark.errors import LandmarkError
from nnlandmark.geometry import lps_to_ras
from nnlandmark.io.atomic import read_json
from nnlandmark.io.landmark_files import FORMATS, finite_point, write_csv, write_fcsv, write_mrk_json

Points = Dict[str, Dict[str, np.ndarray]]      # {case: {name: world LPS mm}}
Presence = Dict[str, Dict[str, bool]]          # {case: {name: present?}}


def case_prediction(case: str, image: str, landmarks: Dict[str, dict]) -> dict:
    """``{"case", "image", "coordinate_system": "LPS", "landmarks": {NAME: {label, voxel, world, likelihood,
    present}}}``; voxel is the continuous ITK index of the original image, world = origin + D @ (spacing * voxel) in
    mm; present is false when the likelihood lies below the model's calibrated threshold (coordinates still given)."""
    return {"case": case, "image": image, "coordinate_system": "LPS", "landmarks": landmarks}


def parse_formats(text: str) -> List[str]:
    """'json,fcsv' -> ['json', 'fcsv']; an unknown name is a LandmarkError listing the allowed ones."""
    formats = [f.strip().lower().lstrip(".") for f in text.split(",") if f.strip()]
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise LandmarkError(f"unknown --format {', '.join(unknown) or repr(text)}: choose from {', '.join(FORMATS)}")
    return list(dict.fromkeys(formats))


def write_prediction_formats(prediction: dict, output_dir: str, formats: Iterable[str]) -> List[str]:
    """A prediction dict (the CASE.json schema) -> OUTPUT_DIR/CASE.mrk.json, CASE.fcsv, CASE.csv for the requested
    formats ('json' is CASE.json itself and is written by the predictor). Returns the paths written."""
    formats = parse_formats(formats if isinstance(formats, str) else ",".join(formats))
    if prediction.get("coordinate_system", "LPS") != "LPS":
        raise LandmarkError(f"case '{prediction.get('case')}': prediction coordinate_system must be LPS")
    case = prediction["case"]
    entries = prediction["landmarks"]
    world = {name: entry["world"] for name, entry in entries.items()}
    written = []
    for fmt in formats:
        if fmt == "json":
            continue
        target = join(output_dir, f"{case}.{fmt}")
        if fmt == "mrk.json":
            write_mrk_json(target, world)
        elif fmt == "fcsv":
            write_fcsv(target, world)
        else:
            write_csv(target, world, voxel={name: entry["voxel"] for name, entry in entries.items()})
        written.append(target)
    return written


def read_prediction(path) -> dict:
    """One CASE.json as written by the predictor."""
    prediction = read_json(path, "prediction")
    if not isinstance(prediction, dict) or not isinstance(prediction.get("landmarks"), dict):
        raise LandmarkError(f"{path} is not a prediction file: no 'landmarks' object")
    return prediction


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


def read_predictions(pred_dir) -> Tuple[Points, Presence]:
    """({case: {name: world LPS}} of every landmark predicted present, {case: {name: predicted present?}} of every
    landmark a file lists), from one pass over the folder. ``"present": false`` and a missing position mean the
    model says the landmark is not there."""
    preds, presence = {}, {}
    for path, case, system, landmarks in _prediction_files(pred_dir):
        presence[case] = {name: _predicted_present(entry) for name, entry in landmarks.items()}
        points = {}
        for name, entry in landmarks.items():
            if presence[case][name]:
                xyz = finite_point(entry["world"], f"{path}: landmark '{name}'")
                points[name] = lps_to_ras(xyz) if system == "RAS" else xyz
        preds[case] = points
    return preds, presence


def read_world_landmarks(path) -> Tuple[Points, Presence]:
    """(points, presence) of a world landmarks JSON ``{case: {name: [x, y, z] | null}}`` in LPS mm (as
    all_landmarks_world.json); null marks a landmark truly absent from that case."""
    data = read_json(path)
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise LandmarkError(f"{path}: expected {{case: {{name: [x, y, z]}}}} in world LPS mm")
    points = {str(case): {name: finite_point(xyz, f"{path}: {case}/{name}") for name, xyz in landmarks.items()
                          if xyz is not None} for case, landmarks in data.items()}
    presence = {str(case): {name: xyz is not None for name, xyz in landmarks.items()}
                for case, landmarks in data.items()}
    return points, presence


def read_priors(path) -> Points:
    """Prior positions for a search around them: a folder of CASE.json predictions or a world landmarks JSON."""
    return read_world_landmarks(path)[0] if os.path.isfile(path) else read_predictions(path)[0]
