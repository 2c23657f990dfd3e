"""Landmark files in the formats users' tools read: 3D Slicer .mrk.json and .fcsv, CSV and JSON (docs/design.md, "File formats").

Writers take world LPS millimetres. Readers return world LPS (RAS files converted) except for CSV/JSON in voxel
coordinates, which stay continuous ITK indices: ``read_landmark_file`` says which in ``coordinate_system``.
"""
import csv
import io
import json
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from nnlandmark.errors import LandmarkError
from nnlandmark.geometry import lps_to_ras
from nnlandmark.io.atomic import read_json, read_text_lines, write_text_atomic

MRK_SCHEMA = ("https://raw.githubusercontent.com/slicer/slicer/main/Modules/Loadable/Markups/Resources/"
              "Schema/markups-schema-v1.0.3.json#")
FCSV_COLUMNS = "id,x,y,z,ow,ox,oy,oz,vis,sel,lock,label,desc,associatedNodeID"
FORMATS = ("json", "mrk.json", "fcsv", "csv")
COORDINATE_SYSTEMS = ("LPS", "RAS", "voxel")
LANDMARK_FILE_ENDINGS = (".mrk.json", ".fcsv", ".csv", ".json")


@dataclass
class LandmarkFile:
    """What one annotation file says: points by name, in ``coordinate_system`` (LPS world mm or voxel = continuous
    ITK index; None = the file does not say), and the names it lists without a position (undefined/absent)."""
    points: Dict[str, np.ndarray]
    coordinate_system: Optional[str]
    missing: List[str] = field(default_factory=list)


def parse_coordinate_system(text: str, where: str = "--coordinate-system") -> str:
    """'lps' / 'RAS' / 'voxel' (any case) -> 'LPS' / 'RAS' / 'voxel'."""
    value = str(text).strip()
    for system in COORDINATE_SYSTEMS:
        if value.lower() == system.lower():
            return system
    raise LandmarkError(f"{where}: unknown coordinate system '{text}' (lps, ras or voxel)")


def _xyz(point, name) -> List[float]:
    xyz = [float(v) for v in np.asarray(point, float).reshape(-1)]
    if len(xyz) != 3:
        raise LandmarkError(f"landmark '{name}' has {len(xyz)} coordinates, expected 3")
    return xyz


def _in_system(point, coordinate_system: str) -> List[float]:
    """LPS point -> the file's coordinate system."""
    return [float(v) for v in lps_to_ras(point)] if coordinate_system == "RAS" else list(point)


def write_mrk_json(path: str, landmarks: Dict[str, Sequence[float]], coordinate_system: str = "LPS") -> None:
    """3D Slicer markups JSON with one Fiducial markup; ``landmarks`` are world LPS mm, written in
    ``coordinate_system`` ("LPS" or "RAS"). Positions are floats (Slicer ignores integer literals)."""
    if coordinate_system not in ("LPS", "RAS"):
        raise LandmarkError(f"coordinate system must be LPS or RAS, not '{coordinate_system}'")
    points = [{"id": str(i), "label": str(name),
               "position": _in_system(_xyz(p, name), coordinate_system),  # python floats: json writes 10.0
               "positionStatus": "defined"}
              for i, (name, p) in enumerate(landmarks.items(), start=1)]
    doc = {"@schema": MRK_SCHEMA,
           "markups": [{"type": "Fiducial", "coordinateSystem": coordinate_system, "coordinateUnits": "mm",
                        "controlPoints": points}]}
    write_text_atomic(json.dumps(doc, indent=2) + "\n", path)


def write_fcsv(path: str, landmarks: Dict[str, Sequence[float]]) -> None:
    """Slicer fcsv version 5.3 in LPS, one row per landmark (label = name, quoted when it needs it)."""
    buf = io.StringIO()
    buf.write("# Markups fiducial file version = 5.3\n# CoordinateSystem = LPS\n"
              f"# columns = {FCSV_COLUMNS}\n")
    writer = csv.writer(buf, lineterminator="\n")
    for i, (name, p) in enumerate(landmarks.items(), start=1):
        x, y, z = _xyz(p, name)
        writer.writerow([str(i), repr(x), repr(y), repr(z), 0, 0, 0, 1, 1, 1, 0, str(name), "", ""])
    write_text_atomic(buf.getvalue(), path)


def write_csv(path: str, landmarks: Dict[str, Sequence[float]],
              voxel: Optional[Dict[str, Sequence[float]]] = None) -> None:
    """``name,x,y,z`` (world LPS mm), plus ``i,j,k`` (continuous ITK index) when ``voxel`` is given."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["name", "x", "y", "z"] + (["i", "j", "k"] if voxel is not None else []))
    for name, p in landmarks.items():
        row = [str(name)] + [repr(v) for v in _xyz(p, name)]
        if voxel is not None:
            if name not in voxel:
                raise LandmarkError(f"landmark '{name}' has no voxel coordinate for {path}")
            row += [repr(v) for v in _xyz(voxel[name], name)]
        writer.writerow(row)
    write_text_atomic(buf.getvalue(), path)


def finite_point(values, where: str) -> np.ndarray:
    """Three finite numbers as a (3,) array, or a LandmarkError saying where."""
    try:
        point = np.array([float(v) for v in values], float)
    except (TypeError, ValueError):
        raise LandmarkError(f"{where}: position {values!r} is not three numbers") from None
    if point.shape != (3,) or not np.all(np.isfinite(point)):
        raise LandmarkError(f"{where}: position {values!r} is not three finite numbers")
    return point


def read_markups(path: str) -> List[dict]:
    """The markups of a Slicer ``.mrk.json`` (each checked: an object with LPS/RAS mm coordinates and a list of
    control points), for any markup type."""
    doc = read_json(path, "markups JSON")
    markups = doc.get("markups") if isinstance(doc, dict) else None
    if not isinstance(markups, list):
        raise LandmarkError(f"{path} is not a Slicer markups file: no 'markups' list")
    for m, markup in enumerate(markups):
        if not isinstance(markup, dict):
            raise LandmarkError(f"{path}: markup {m} is not an object")
        system = str(markup.get("coordinateSystem", "LPS")).upper()
        if system not in ("LPS", "RAS"):
            raise LandmarkError(f"{path}: markup {m} has unsupported coordinateSystem '{system}' (LPS or RAS)")
        units = markup.get("coordinateUnits", "mm")
        if units != "mm":
            raise LandmarkError(f"{path}: markup {m} has coordinateUnits '{units}', only mm is supported")
        if not isinstance(markup.get("controlPoints", []), list):
            raise LandmarkError(f"{path}: markup {m} controlPoints is not a list")
    return markups


def markup_control_points(markup: dict, path: str, m: int = 0) -> List[Tuple[str, Optional[np.ndarray]]]:
    """(label, world LPS mm or None where undefined) of each control point of one checked markup (``read_markups``);
    a point without label is named by its id, else by its number."""
    system = str(markup.get("coordinateSystem", "LPS")).upper()
    points = []
    for n, cp in enumerate(markup.get("controlPoints", []), start=1):
        if not isinstance(cp, dict):
            raise LandmarkError(f"{path}: control point {n} of markup {m} is not an object")
        name = str(cp.get("label") or cp.get("id") or n)
        position = cp.get("position", "")
        if position == "" or position is None or cp.get("positionStatus", "defined") != "defined":
            points.append((name, None))
            continue
        point = finite_point(position if isinstance(position, list) else [position],
                             f"{path}: control point '{name}'")
        points.append((name, lps_to_ras(point) if system == "RAS" else point))
    return points


def read_mrk_json(path: str) -> Dict[str, np.ndarray]:
    """Slicer markups JSON -> {label: world LPS mm}; undefined points are left out, RAS files converted."""
    return _read_mrk_json(path).points


def _read_mrk_json(path: str) -> LandmarkFile:
    landmarks, missing = {}, []
    for m, markup in enumerate(read_markups(path)):
        for name, point in markup_control_points(markup, path, m):
            if name in landmarks or name in missing:
                raise LandmarkError(f"{path}: landmark '{name}' appears twice")
            if point is None:
                missing.append(name)
            else:
                landmarks[name] = point
    return LandmarkFile(landmarks, "LPS", missing)


def fcsv_system(value: str, where: str) -> str:
    """An fcsv ``CoordinateSystem`` value (RAS, LPS, 0 = RAS, 1 = LPS) -> "RAS" / "LPS"."""
    value = value.strip().upper()
    systems = {"RAS": "RAS", "0": "RAS", "LPS": "LPS", "1": "LPS"}
    if value not in systems:
        raise LandmarkError(f"{where}: unsupported CoordinateSystem '{value}' (RAS, LPS, 0 or 1)")
    return systems[value]


@dataclass
class FcsvRows:
    """An fcsv file split into what its header says and its rows of fields (each with "PATH line N")."""
    system: Optional[str]          # "RAS"/"LPS" as declared, None when the header does not say
    version: Optional[str]
    status_column: Optional[int]   # the positionStatus field, named in '# columns' or implied by version 5.x
    rows: List[Tuple[str, List[str]]]


def read_fcsv_rows(path: str, max_fields: Optional[int] = 16) -> FcsvRows:
    """Header and rows of a Slicer fcsv (version 4.x or 5.x); every row has 14 to ``max_fields`` (None: any) fields."""
    system, version, status_column, rows = None, None, None, []
    for number, line in enumerate(read_text_lines(path), start=1):
        where = f"{path} line {number}"
        if not line.strip():
            continue
        if line.startswith("#"):
            key, _, value = line[1:].partition("=")
            key = key.strip().lower()
            if key == "markups fiducial file version":
                version = value.strip()
                if version.split(".")[0] not in ("4", "5"):
                    raise LandmarkError(f"{where}: unsupported fcsv version '{version}' (4.x or 5.x)")
            elif key == "coordinatesystem":
                system = fcsv_system(value, where)
            elif key == "columns":
                columns = [c.strip() for c in value.split(",")]
                status_column = columns.index("positionStatus") if "positionStatus" in columns else None
            continue
        fields = next(csv.reader([line]))
        if len(fields) < 14 or (max_fields is not None and len(fields) > max_fields):
            allowed = "at least 14" if max_fields is None else f"14 to {max_fields}"
            raise LandmarkError(f"{where}: {len(fields)} fields, an fcsv row has {allowed} "
                                f"({FCSV_COLUMNS}[,positionStatus,autoCreated])")
        rows.append((where, fields))
    # positionStatus (Slicer 5): named in '# columns', else the 15th field of a 5.x row; 4.x rows (AFIDs) may carry
    # other text there
    if status_column is None and version is not None and version.startswith("5"):
        status_column = 14
    return FcsvRows(system, version, status_column, rows)


def read_fcsv(path: str) -> Dict[str, np.ndarray]:
    """Slicer fcsv (version 4.x or 5.x) -> {label: world LPS mm}. ``CoordinateSystem`` RAS/0 or LPS/1,
    missing -> LPS; rows have 14 to 16 fields; a row with an empty label is named by its id."""
    return _read_fcsv(path).points


def _read_fcsv(path: str) -> LandmarkFile:
    fcsv = read_fcsv_rows(path)
    landmarks, missing = {}, []
    for where, fields in fcsv.rows:
        name = fields[11] or fields[0]
        if name in landmarks or name in missing:
            raise LandmarkError(f"{where}: landmark '{name}' appears twice")
        status = fcsv.status_column
        if status is not None and len(fields) > status and fields[status].strip() in ("undefined", "preview"):
            missing.append(name)
            continue
        point = finite_point(fields[1:4], where)
        landmarks[name] = lps_to_ras(point) if fcsv.system == "RAS" else point
    if fcsv.version is None and not landmarks:
        raise LandmarkError(f"{path} is not an fcsv file: no '# Markups fiducial file version' header and no rows")
    return LandmarkFile(landmarks, "LPS", missing)


def _named_columns(header: List[str], path: str):
    """Header row -> (name column, coordinate columns, declared system or None)."""
    keys = [h.strip().lower() for h in header]
    name = next((keys.index(k) for k in ("name", "label", "landmark") if k in keys), None)
    for axes, system in ((("x", "y", "z"), None), (("i", "j", "k"), "voxel")):
        if name is not None and all(a in keys for a in axes):
            return name, [keys.index(a) for a in axes], system
    raise LandmarkError(f"{path}: header {header} needs a name column (name/label/landmark) and x,y,z "
                        f"(or i,j,k for voxel indices)")


def _read_csv(path: str) -> LandmarkFile:
    """``name,x,y,z`` rows, header optional (``i,j,k`` columns mean voxel); ``# coordinate_system = LPS`` lines
    declare the system; a row with empty coordinates is a missing landmark."""
    lines = read_text_lines(path)
    system, columns, points, missing = None, None, {}, []
    for number, line in enumerate(lines, start=1):
        where = f"{path} line {number}"
        if not line.strip():
            continue
        if line.startswith("#"):
            key, _, value = line[1:].partition("=")
            if key.strip().lower().replace(" ", "_") in ("coordinate_system", "coordinatesystem"):
                system = parse_coordinate_system(value, where)
            continue
        fields = [f.strip() for f in next(csv.reader([line]))]
        if columns is None:
            try:
                [float(v) for v in fields[1:4]]
                columns = (0, [1, 2, 3], None)
            except ValueError:
                columns = _named_columns(fields, path)
                if columns[2] and system not in (None, columns[2]):
                    raise LandmarkError(f"{where}: i,j,k columns are voxel indices but the file declares {system}")
                system = columns[2] or system
                continue
        name_column, xyz_columns, _ = columns
        if len(fields) <= max(name_column, *xyz_columns):
            raise LandmarkError(f"{where}: {len(fields)} fields, expected name and three coordinates")
        name = fields[name_column]
        if not name:
            raise LandmarkError(f"{where}: a landmark without a name")
        if name in points or name in missing:
            raise LandmarkError(f"{where}: landmark '{name}' appears twice")
        values = [fields[c] for c in xyz_columns]
        if not any(values):
            missing.append(name)
        else:
            points[name] = finite_point(values, f"{where} landmark '{name}'")
    if not points and not missing:
        raise LandmarkError(f"{path} holds no landmark rows")
    return LandmarkFile(points, system, missing)


def _no_duplicate_keys(path: str):
    def hook(pairs):
        keys = [k for k, _ in pairs]
        duplicated = next((k for k in keys if keys.count(k) > 1), None)
        if duplicated is not None:
            raise LandmarkError(f"{path}: landmark '{duplicated}' appears twice")
        return dict(pairs)
    return hook


def _read_json(path: str) -> LandmarkFile:
    """``{name: [x, y, z] | null}`` or ``{"coordinate_system": ..., "landmarks": {name: [x, y, z] | {"world": [...]}
    | null}}`` (the second form also reads nnlandmark's own prediction files)."""
    doc = read_json(path, object_pairs_hook=_no_duplicate_keys(path))
    if not isinstance(doc, dict):
        raise LandmarkError(f"{path}: expected an object {{name: [x, y, z]}}")
    system = None
    if "landmarks" in doc:
        if "coordinate_system" in doc:
            system = parse_coordinate_system(doc["coordinate_system"], f"{path} coordinate_system")
        doc = doc["landmarks"]
        if not isinstance(doc, dict):
            raise LandmarkError(f"{path}: 'landmarks' must be an object {{name: [x, y, z]}}")
    points, missing = {}, []
    for name, value in doc.items():
        if isinstance(value, dict):
            value = value.get("world")
        if value is None or value == "":
            missing.append(str(name))
        else:
            points[str(name)] = finite_point(value if isinstance(value, list) else [value],
                                              f"{path}: landmark '{name}'")
    if not points and not missing:
        raise LandmarkError(f"{path} holds no landmarks")
    return LandmarkFile(points, system, missing)


def read_landmark_file(path: str, coordinate_system: Optional[str] = None) -> LandmarkFile:
    """Any supported annotation file -> LandmarkFile with a resolved system. ``coordinate_system`` applies only to
    files that do not declare their own (CSV/JSON); Slicer files always come back as world LPS."""
    lower = path.lower()
    if lower.endswith(".mrk.json"):
        return _read_mrk_json(path)
    if lower.endswith(".fcsv"):
        return _read_fcsv(path)
    if lower.endswith(".csv"):
        result = _read_csv(path)
    elif lower.endswith(".json"):
        result = _read_json(path)
    else:
        raise LandmarkError(f"{path}: unknown landmark file type (use {', '.join(LANDMARK_FILE_ENDINGS)})")
    if result.coordinate_system is None:
        if coordinate_system is None:
            raise LandmarkError(f"{path} does not say its coordinate system: pass --coordinate-system lps, ras or "
                                f"voxel")
        result.coordinate_system = parse_coordinate_system(coordinate_system)
    if result.coordinate_system == "RAS":
        result.points = {name: lps_to_ras(p) for name, p in result.points.items()}
        result.coordinate_system = "LPS"
    return result
