"""The per-case prediction JSON (the schema other tools read), its extra formats, and world-landmark JSON files.

Everything here reads and writes world LPS millimetres; files in RAS are converted on reading.
"""
import csv
import io
import math
import os
from os.path import join
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from nnlandmark.errors import LandmarkError
from nnlandmark.geometry import lps_to_ras
from nnlandmark.io.atomic import read_json, write_json_atomic, write_text_atomic
from nnlandmark.io.landmark_files import FORMATS, finite_point, write_csv, write_fcsv, write_mrk_json
from nnlandmark.landmark_set import LANDMARKS_VOXEL_JSON, LANDMARKS_WORLD_JSON

Points = Dict[str, Dict[str, np.ndarray]]      # {case: {name: world LPS mm}}
Presence = Dict[str, Dict[str, bool]]          # {case: {name: present?}}
REVIEW_CSV = "review.csv"                      # nnLandmark_predict --review: the landmarks a person should check


def case_prediction(case: str, image: str, landmarks: Dict[str, dict], radius_coverage: Optional[float] = None,
                    instances: Optional[Dict[str, List[dict]]] = None) -> dict:
    """``{"case", "image", "coordinate_system": "LPS", "radius_coverage", "landmarks": {NAME: {label, voxel, world,
    likelihood, present, peak, expected_error_mm, radius_mm}}}``; voxel is the continuous ITK index of the original
    image, world = origin + D @ (spacing * voxel) in mm; present is false when the likelihood lies below the model's
    calibrated threshold (coordinates still given); the true landmark lies within radius_mm of world for a share
    radius_coverage of landmarks (null, like the error fields, where the model is not calibrated). A model with
    multi-instance classes adds ``"instances": {CLASS: [{voxel, world, likelihood}, ...]}``, strongest first."""
    return {"case": case, "image": image, "coordinate_system": "LPS", "radius_coverage": radius_coverage,
            "landmarks": landmarks, **({"instances": instances} if instances is not None else {})}


def parse_formats(text: str) -> List[str]:
    """'json,fcsv' -> ['json', 'fcsv']; an unknown name is a LandmarkError listing the allowed ones."""
    formats = [f.strip().lower().lstrip(".") for f in text.split(",") if f.strip()]
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise LandmarkError(f"unknown --format {', '.join(unknown) or repr(text)}: choose from {', '.join(FORMATS)}")
    return list(dict.fromkeys(formats))


def write_prediction_formats(prediction: dict, output_dir: str, formats: Iterable[str],
                             review_mm: Optional[float] = None) -> List[str]:
    """A prediction dict (the CASE.json schema) -> OUTPUT_DIR/CASE.mrk.json, CASE.fcsv, CASE.csv for the requested
    formats ('json' is CASE.json itself and is written by the predictor), with a point per instance of a
    multi-instance class; Slicer files mark landmarks predicted
    absent as skipped points, and those to review (``review_mm``, see ``to_review``) with a description and
    unselected. Returns the paths written."""
    formats = parse_formats(formats if isinstance(formats, str) else ",".join(formats))
    if prediction.get("coordinate_system", "LPS") != "LPS":
        raise LandmarkError(f"case '{prediction.get('case')}': prediction coordinate_system must be LPS")
    case = prediction["case"]
    entries = prediction["landmarks"]
    world = {name: entry["world"] for name, entry in entries.items()}
    absent = [name for name, entry in entries.items() if entry.get("present") is False]
    notes = {name: f"review: expected error {e:.1f} mm, radius {r:.1f} mm"
             for name, e, r, _ in to_review(prediction, review_mm)} if review_mm is not None else None
    written = []
    for fmt in formats:
        if fmt == "json":
            continue
        target = join(output_dir, f"{case}.{fmt}")
        instances = prediction.get("instances")
        if fmt == "mrk.json":
            write_mrk_json(target, world, missing=absent, notes=notes, instances=instances)
        elif fmt == "fcsv":
            write_fcsv(target, world, missing=absent, notes=notes, instances=instances)
        else:
            write_csv(target, world, voxel={name: entry["voxel"] for name, entry in entries.items()},
                      instances=instances)
        written.append(target)
    return written


def to_review(prediction: dict, review_mm: float) -> List[Tuple[str, float, float, float]]:
    """(name, expected_error_mm, radius_mm, likelihood) of the landmarks predicted present whose expected error
    exceeds ``review_mm``, worst first; a prediction without error estimates is refused (its model is not
    calibrated: nothing could be said about it)."""
    if prediction.get("radius_coverage") is None:
        raise LandmarkError(f"case '{prediction.get('case')}' has no error estimates (radius_coverage null): the "
                            f"model is not calibrated; run nnLandmark_calibrate first")
    rows = [(name, float(e["expected_error_mm"]), float(e["radius_mm"]), float(e["likelihood"]))
            for name, e in prediction["landmarks"].items()
            if e.get("present", True) and e["expected_error_mm"] > review_mm]
    return sorted(rows, key=lambda row: -row[1])


def write_review_list(predictions: Sequence[dict], review_mm: float, path: str) -> int:
    """review.csv: case, landmark, expected_error_mm, radius_mm, likelihood of every landmark ``to_review``, worst
    first over all cases; returns how many rows."""
    rows = sorted(((p["case"], *row) for p in predictions for row in to_review(p, review_mm)),
                  key=lambda row: (-row[2], row[0], row[1]))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["case", "landmark", "expected_error_mm", "radius_mm", "likelihood"])
    writer.writerows([case, name, f"{e:.3f}", f"{r:.3f}", f"{lik:.4f}"] for case, name, e, r, lik in rows)
    write_text_atomic(buf.getvalue(), path)
    return len(rows)


def read_prediction(path) -> dict:
    """One CASE.json as written by the predictor."""
    prediction = read_json(path, "prediction")
    if not isinstance(prediction, dict) or not isinstance(prediction.get("landmarks"), dict):
        raise LandmarkError(f"{path} is not a prediction file: no 'landmarks' object")
    return prediction


def _prediction_files(pred_dir):
    """(path, case, system, landmarks dict, the whole document) of every prediction JSON in a folder (files without
    "landmarks", e.g. summary.json, are not predictions)."""
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
        yield path, case, system, data["landmarks"], data
    if not seen:
        raise LandmarkError(f"no prediction JSON files (with a 'landmarks' key) in {pred_dir}")


def _world_position(path, name: str, entry, system: str) -> Optional[np.ndarray]:
    """World LPS of one landmark of a prediction file, None where it says ``"present": false``. Anything but the
    documented schema is refused, so that a file of another tool is never read as "predicted absent"."""
    where = f"{path}: landmark '{name}'"
    if not isinstance(entry, dict):
        raise LandmarkError(f'{where} must be an object {{"world": [x, y, z], "present": true|false, ...}}, '
                            f'got {entry!r}')
    present = entry.get("present", True)
    if not isinstance(present, bool):
        raise LandmarkError(f'{where}: "present" must be true or false (a JSON boolean), got {present!r}')
    if entry.get("world") is None:
        if present:
            raise LandmarkError(f'{where} has no "world" position [x, y, z]; write "present": false for a landmark '
                                f'that is not there')
        return None
    xyz = finite_point(entry["world"], where)
    if not present:
        return None
    return lps_to_ras(xyz) if system == "RAS" else xyz


def read_predictions(pred_dir) -> Tuple[Points, Presence]:
    """({case: {name: world LPS}} of every landmark predicted present, {case: {name: predicted present?}} of every
    landmark a file lists), from one pass over the folder. Only ``"present": false`` means the model says the
    landmark is not there."""
    preds, presence = {}, {}
    for path, case, system, landmarks, _ in _prediction_files(pred_dir):
        positions = {name: _world_position(path, name, entry, system) for name, entry in landmarks.items()}
        presence[case] = {name: xyz is not None for name, xyz in positions.items()}
        preds[case] = {name: xyz for name, xyz in positions.items() if xyz is not None}
    return preds, presence


def read_landmark_entries(pred_dir) -> Dict[str, Dict[str, dict]]:
    """{case: {name: the landmark's entry as written}} of a folder of CASE.json predictions in LPS (the predictor's
    own files: their likelihood, peak features and error estimates)."""
    entries = {}
    for path, case, system, landmarks, _ in _prediction_files(pred_dir):
        if system != "LPS" or not all(isinstance(e, dict) for e in landmarks.values()):
            raise LandmarkError(f"{path} is not a prediction of nnLandmark_predict (LPS, an object per landmark)")
        entries[case] = landmarks
    return entries


def read_error_estimates(pred_dir) -> Tuple[Optional[float], Dict[str, Dict[str, Tuple[float, float]]]]:
    """(radius coverage, {case: {name: (expected_error_mm, radius_mm)}}) of the calibrated predictions of a folder;
    (None, {}) where none is calibrated. Predictions calibrated for different coverages are refused: their radii
    cannot be judged as one set."""
    coverages, estimates = set(), {}
    for _, case, _, landmarks, document in _prediction_files(pred_dir):
        coverage = document.get("radius_coverage")
        if coverage is None:
            continue
        coverages.add(float(coverage))
        estimates[case] = {}
        for name, entry in landmarks.items():
            pair = (entry.get("expected_error_mm"), entry.get("radius_mm")) if isinstance(entry, dict) else (None,)
            if all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in pair):
                estimates[case][name] = (float(pair[0]), float(pair[1]))
    if len(coverages) > 1:
        raise LandmarkError(f"{pred_dir}: predictions calibrated for different radius coverages "
                            f"({', '.join(f'{c:g}' for c in sorted(coverages))}); evaluate them separately")
    return (coverages.pop() if coverages else None), estimates


def read_likelihoods(pred_dir) -> Dict[str, Dict[str, float]]:
    """{case: {name: likelihood}} of a prediction folder; a likelihood that is not a finite number (a diverged model
    writes NaN) is refused, naming the file and the landmark."""
    likelihoods = {}
    for path, case, _, landmarks, _ in _prediction_files(pred_dir):
        likelihoods[case] = {}
        for name, entry in landmarks.items():
            value = entry.get("likelihood") if isinstance(entry, dict) else None
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise LandmarkError(f"{path}: landmark '{name}' has likelihood {value!r}, not a number: run this "
                                    f"fold's validation again (nnLandmark_train ... --val)")
            if not math.isfinite(value):
                raise LandmarkError(f"{path}: landmark '{name}' has likelihood {value} (a diverged model?): retrain "
                                    f"this fold, or run its validation again (nnLandmark_train ... --val)")
            likelihoods[case][name] = float(value)
    return likelihoods


def read_instances(pred_dir) -> Dict[str, Dict[str, List[dict]]]:
    """{case: {class: [{world (LPS), likelihood, ...}, ...]}} of the multi-instance classes in a prediction folder
    ({} for a case without "instances")."""
    instances = {}
    for path, case, system, _, document in _prediction_files(pred_dir):
        named = document.get("instances", {})
        if not isinstance(named, dict) or not all(isinstance(v, list) for v in named.values()):
            raise LandmarkError(f"{path}: 'instances' must be an object {{class: [{{'world': [x, y, z], ...}}]}}")
        instances[case] = {name: [{**e, "world": _world_position(path, name, e, system).tolist()} for e in entries]
                           for name, entries in named.items()}
    return instances


COORDINATE_SYSTEM_KEY = "coordinate_system"   # the one top-level key of a landmark table that is not a case ID


def write_landmark_table(path: str, table: Dict[str, Dict[str, Optional[Sequence[float]]]], system: str) -> None:
    """``{"coordinate_system": system, case: {name: [x, y, z] | null}}``: all_landmarks_world.json (system "LPS") and
    all_landmarks_voxel.json ("voxel", continuous ITK indices) of a raw dataset say what they hold, so a reader can
    refuse voxel indices where millimetres are meant."""
    write_json_atomic({COORDINATE_SYSTEM_KEY: system, **table}, path)


def read_landmark_table(path) -> Tuple[str, Dict[str, Dict[str, Optional[List[float]]]]]:
    """(system, {case: {name: [x, y, z] | None}}) of a landmark table; the system is "LPS", "RAS" or "voxel" as
    declared, else "voxel" for a file named all_landmarks_voxel.json and "LPS" for any other."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise LandmarkError(f"{path}: expected {{case: {{name: [x, y, z]}}}} in world LPS mm")
    default = "voxel" if Path(path).name == LANDMARKS_VOXEL_JSON else "LPS"
    system = str(data.pop(COORDINATE_SYSTEM_KEY, default))
    system = "voxel" if system.lower() == "voxel" else system.upper()
    if system not in ("LPS", "RAS", "voxel"):
        raise LandmarkError(f"{path}: coordinate_system must be 'LPS', 'RAS' or 'voxel', got {system!r}")
    if not all(isinstance(v, dict) for v in data.values()):
        raise LandmarkError(f"{path}: expected {{case: {{name: [x, y, z]}}}} in world LPS mm")
    table = {str(case): {name: None if xyz is None else finite_point(xyz, f"{path}: {case}/{name}").tolist()
                         for name, xyz in landmarks.items()} for case, landmarks in data.items()}
    return system, table


def read_world_landmarks(path) -> Tuple[Points, Presence]:
    """(points, presence) of a world landmark table (as all_landmarks_world.json); null marks a landmark truly absent
    from that case. RAS is converted to LPS; voxel indices are refused, since read as millimetres they would give
    errors of centimetres for exact predictions."""
    system, table = read_landmark_table(path)
    if system == "voxel":
        raise LandmarkError(f"{path} holds voxel indices, not world coordinates: use {LANDMARKS_WORLD_JSON} (or the "
                            f"raw dataset folder) instead")
    to_lps = lps_to_ras if system == "RAS" else np.asarray   # the flip is its own inverse
    points = {case: {name: np.asarray(to_lps(xyz), float) for name, xyz in named.items() if xyz is not None}
              for case, named in table.items()}
    presence = {case: {name: xyz is not None for name, xyz in named.items()} for case, named in table.items()}
    return points, presence


def read_priors(path) -> Points:
    """Prior positions for a search around them: a folder of CASE.json predictions or a world landmarks JSON."""
    return read_world_landmarks(path)[0] if os.path.isfile(path) else read_predictions(path)[0]
