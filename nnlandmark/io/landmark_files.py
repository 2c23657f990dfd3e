"""Landmark files in the formats users' tools read: 3D Slicer .mrk.json and .fcsv, CSV and JSON (docs/design.md, "File formats").

Writers take world LPS millimetres. Readers return world LPS (RAS files converted) except for CSV/JSON in voxel
coordinates, which stay continuous ITK indices: ``read_landmark_file`` says which in ``coordinate_system``.
"""
import csv
import io
import json
import re
import warnings
from dataclasses import dataclass, field
from typing import Collection, Dict, List, Optional, Sequence, Tuple

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
    ITK index; None = the file does not say), the names it lists without a position (undefined/absent), and the
    points of the multi-instance classes it was told of (``repeatable``: a name that may occur any number of times)."""
    points: Dict[str, np.ndarray] = field(default_factory=dict)
    coordinate_system: Optional[str] = None
    missing: List[str] = field(default_factory=list)
    instances: Dict[str, List[np.ndarray]] = field(default_factory=dict)
    repeatable: Collection[str] = ()
    planar: bool = False    # two coordinates per point (a 2D image's): z = 0 was filled in

    def add(self, name: str, point: Optional[np.ndarray], where: str) -> None:
        """One named point (None: listed without a position); a second point of a name that is not repeatable is
        refused."""
        if name in self.repeatable:
            if point is not None:
                self.instances.setdefault(name, []).append(point)
            return
        if name in self.points or name in self.missing:
            raise LandmarkError(f"{where}: landmark '{name}' appears twice (several points of one class: declare it "
                                f"multi-instance, nnLandmark_convert --multi-instance '{name}')")
        if point is None:
            self.missing.append(name)
        else:
            self.points[name] = point

    @property
    def empty(self) -> bool:
        return not (self.points or self.missing or self.instances)


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


Instances = Dict[str, Sequence[dict]]   # {class: [{"world": LPS, "voxel": ITK index, ...}, ...]} (prediction JSON)


def _rows(landmarks: Dict[str, Sequence[float]], instances: Optional[Instances]) -> List[Tuple[str, Sequence[float]]]:
    """(label, world) of every point to write: the landmarks, then one per instance labelled with its class."""
    return list(landmarks.items()) + [(name, e["world"]) for name, entries in (instances or {}).items()
                                      for e in entries]


def write_mrk_json(path: str, landmarks: Dict[str, Sequence[float]], coordinate_system: str = "LPS",
                   missing: Sequence[str] = (), notes: Optional[Dict[str, str]] = None,
                   instances: Optional[Instances] = None) -> None:
    """3D Slicer markups JSON with one Fiducial markup; ``landmarks`` are world LPS mm, written in
    ``coordinate_system`` ("LPS" or "RAS"). Positions are floats (Slicer ignores integer literals). The ``missing``
    ones keep their position but are marked as Slicer marks a skipped point, so that a corrected file converts them
    as absent, not as annotations. Points with a ``notes`` entry carry it as their description and are unselected,
    so that they stand out in Slicer's list and views (a review flag). Each instance of a multi-instance class is a
    control point labelled with the class."""
    if coordinate_system not in ("LPS", "RAS"):
        raise LandmarkError(f"coordinate system must be LPS or RAS, not '{coordinate_system}'")
    notes = notes or {}
    points = [{"id": str(i), "label": str(name),
               "position": _in_system(_xyz(p, name), coordinate_system),  # python floats: json writes 10.0
               "positionStatus": "missing" if name in missing else "defined",
               **({"description": notes[name], "selected": False} if name in notes else {})}
              for i, (name, p) in enumerate(_rows(landmarks, instances), start=1)]
    doc = {"@schema": MRK_SCHEMA,
           "markups": [{"type": "Fiducial", "coordinateSystem": coordinate_system, "coordinateUnits": "mm",
                        "controlPoints": points}]}
    write_text_atomic(json.dumps(doc, indent=2) + "\n", path)


def write_fcsv(path: str, landmarks: Dict[str, Sequence[float]], missing: Sequence[str] = (),
               notes: Optional[Dict[str, str]] = None, instances: Optional[Instances] = None) -> None:
    """Slicer fcsv version 5.3 in LPS, one row per landmark (label = name, quoted when it needs it) and per instance
    (label = its class), ending as Slicer's rows do in positionStatus (2 defined, 3 ``missing``: skipped) and
    autoCreated; a ``notes`` entry is the row's desc, and the row is unselected (sel 0)."""
    notes = notes or {}
    buf = io.StringIO()
    buf.write("# Markups fiducial file version = 5.3\n# CoordinateSystem = LPS\n"
              f"# columns = {FCSV_COLUMNS}\n")
    writer = csv.writer(buf, lineterminator="\n")
    for i, (name, p) in enumerate(_rows(landmarks, instances), start=1):
        x, y, z = _xyz(p, name)
        writer.writerow([str(i), repr(x), repr(y), repr(z), 0, 0, 0, 1, 1, 0 if name in notes else 1, 0, str(name),
                         notes.get(name, ""), "", 3 if name in missing else 2, 0])
    write_text_atomic(buf.getvalue(), path)


def write_csv(path: str, landmarks: Dict[str, Sequence[float]],
              voxel: Optional[Dict[str, Sequence[float]]] = None, instances: Optional[Instances] = None) -> None:
    """``name,x,y,z`` (world LPS mm), plus ``i,j,k`` (continuous ITK index) when ``voxel`` is given; a row per
    instance of a multi-instance class, named by its class."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["name", "x", "y", "z"] + (["i", "j", "k"] if voxel is not None else []))
    voxels = [voxel.get(name) if voxel is not None else None for name in landmarks] + \
        [e.get("voxel") for entries in (instances or {}).values() for e in entries]
    for (name, p), ijk in zip(_rows(landmarks, instances), voxels):
        row = [str(name)] + [repr(v) for v in _xyz(p, name)]
        if voxel is not None:
            if ijk is None:
                raise LandmarkError(f"landmark '{name}' has no voxel coordinate for {path}")
            row += [repr(v) for v in _xyz(ijk, name)]
        writer.writerow(row)
    write_text_atomic(buf.getvalue(), path)


def finite_point(values, where: str) -> np.ndarray:
    """Three finite numbers (a list of numbers or number strings) as a (3,) array, or a LandmarkError saying where;
    true/false are refused, since float() would read them as 1/0."""
    point = None
    if isinstance(values, (list, tuple, np.ndarray)) and not any(isinstance(v, (bool, np.bool_)) for v in values):
        try:
            point = np.array([float(v) for v in values], float)
        except (TypeError, ValueError):
            pass
    if point is None:
        raise LandmarkError(f"{where}: position {values!r} is not three numbers")
    if point.shape != (3,) or not np.all(np.isfinite(point)):
        raise LandmarkError(f"{where}: position {values!r} is not three finite numbers")
    return point


class LandmarkFileWarning(UserWarning):
    """A landmark file was read but part of it was left out; the message names the file and what was skipped."""


POINT_LIST_TYPES = ("Fiducial", "PointList")


def is_point_list(markup: dict) -> bool:
    """Slicer saves point lists as type "Fiducial" ("PointList" in newer naming); a hand-written markup without a
    type is taken as one."""
    return str(markup.get("type", "Fiducial")).lower() in {t.lower() for t in POINT_LIST_TYPES}


def _markup_title(markup: dict, m: int) -> str:
    """"Line 'L'" (the markup's type and name) or "Line (markup 2)", to name a markup in a message."""
    kind = str(markup.get("type", "markup"))
    return f"{kind} '{markup['name']}'" if markup.get("name") else f"{kind} (markup {m + 1})"


def _checked_markups(doc, path: str) -> List[dict]:
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


def read_markups(path: str) -> List[dict]:
    """The markups of a Slicer ``.mrk.json`` (each checked: an object with LPS/RAS mm coordinates and a list of
    control points), of every type: the benchmark converters pick the types they expect (LFC reads Lines)."""
    return _checked_markups(read_json(path, "markups JSON"), path)


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
        point = finite_point(position, f"{path}: control point '{name}'")
        points.append((name, lps_to_ras(point) if system == "RAS" else point))
    return points


def read_mrk_json(path: str) -> Dict[str, np.ndarray]:
    """Slicer markups JSON -> {label: world LPS mm} of its point lists; undefined points are left out, RAS files
    converted."""
    return _read_mrk_json(path, read_markups(path)).points


def _read_mrk_json(path: str, markups: List[dict], repeatable: Collection[str] = ()) -> LandmarkFile:
    """The control points of the point-list markups; other markups (lines, curves, planes...) are not landmarks:
    skipped with a LandmarkFileWarning, or refused when the file holds nothing else."""
    others = [_markup_title(markup, m) for m, markup in enumerate(markups) if not is_point_list(markup)]
    if len(others) == len(markups):
        if not others:
            raise LandmarkError(f"{path} holds no markups: export the landmarks from Slicer as a point list")
        raise LandmarkError(f"{path} holds no point list ({'/'.join(POINT_LIST_TYPES)}) markup, only "
                            f"{', '.join(others)}: export the landmarks as a point list")
    if others:
        what = "markups that are not point lists" if len(others) > 1 else "markup that is not a point list"
        warnings.warn(f"{path}: skipped {len(others)} {what} ({', '.join(others)})", LandmarkFileWarning)
    result = LandmarkFile(coordinate_system="LPS", repeatable=repeatable)
    for m, markup in enumerate(markups):
        if not is_point_list(markup):
            continue
        for name, point in markup_control_points(markup, path, m):
            result.add(name, point, path)
    if result.empty and not repeatable:   # an empty point list of a multi-instance class: none in this case
        raise LandmarkError(f"{path} holds no control points: place the landmarks in Slicer before saving")
    return result


def fcsv_system(value: str, where: str) -> str:
    """An fcsv ``CoordinateSystem`` value (RAS, LPS, 0 = RAS, 1 = LPS) -> "RAS" / "LPS"."""
    value = value.strip().upper()
    systems = {"RAS": "RAS", "0": "RAS", "LPS": "LPS", "1": "LPS"}
    if value not in systems:
        raise LandmarkError(f"{where}: unsupported CoordinateSystem '{value}' (RAS, LPS, 0 or 1)")
    return systems[value]


def _text_lines(path: str) -> List[str]:
    """The lines of a text landmark file; NUL characters mean UTF-16 (Excel's "Unicode text") or a binary file,
    which would otherwise give garbled names."""
    lines = read_text_lines(path)
    if any("\x00" in line for line in lines):
        raise LandmarkError(f"{path} holds NUL characters (UTF-16 text or a binary file?): save it as UTF-8 text")
    return lines


def _fields(line: str, where: str, delimiter: str = ",") -> List[str]:
    try:
        return next(csv.reader([line], delimiter=delimiter))
    except csv.Error as e:
        raise LandmarkError(f"{where} is not a readable CSV row ({e})") from None


@dataclass
class FcsvRows:
    """An fcsv file split into what its header says and its rows of fields (each with "PATH line N")."""
    system: Optional[str]          # "RAS"/"LPS" as declared, None when the header does not say
    version: Optional[str]
    status_column: Optional[int]   # the positionStatus field, named in '# columns' or implied by version 5.x
    rows: List[Tuple[str, List[str]]]


# positionStatus of a point that has no position: Slicer writes the enum's number (0 undefined, 1 preview, 2 defined,
# 3 missing, i.e. skipped by the user), some exports its name
UNPLACED_STATUS = ("0", "1", "3", "undefined", "preview", "missing")


def read_fcsv_rows(path: str, max_fields: Optional[int] = 16) -> FcsvRows:
    """Header and rows of a Slicer fcsv (version 4.x or 5.x); every row has 14 to ``max_fields`` (None: any) fields."""
    system, version, status_column, rows = None, None, None, []
    for number, line in enumerate(_text_lines(path), start=1):
        where = f"{path} line {number}"
        if not line.strip():
            continue
        if line.startswith("#"):
            key, _, value = line[1:].partition("=")
            key = key.strip().lower()
            if key == "markups fiducial file version":
                number_in_it = re.search(r"(\d+)\.\d+", value)  # '5.6', or 'slicer-core-5.13.31053.0'
                version = number_in_it.group(0) if number_in_it else value.strip()
                if not number_in_it or number_in_it.group(1) not in ("4", "5"):
                    raise LandmarkError(f"{where}: unsupported fcsv version '{value.strip()}' (4.x or 5.x)")
            elif key == "coordinatesystem":
                system = fcsv_system(value, where)
            elif key == "columns":
                columns = [c.strip() for c in value.split(",")]
                status_column = columns.index("positionStatus") if "positionStatus" in columns else None
            continue
        fields = _fields(line, where)
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


def _read_fcsv(path: str, repeatable: Collection[str] = ()) -> LandmarkFile:
    fcsv = read_fcsv_rows(path)
    result = LandmarkFile(coordinate_system="LPS", repeatable=repeatable)
    for where, fields in fcsv.rows:
        name = fields[11] or fields[0]
        if not name.strip():
            raise LandmarkError(f"{where}: a landmark without a label or id")
        status = fcsv.status_column
        if status is not None and len(fields) > status and fields[status].strip().lower() in UNPLACED_STATUS:
            result.add(name, None, where)
            continue
        point = finite_point(fields[1:4], where)
        result.add(name, lps_to_ras(point) if fcsv.system == "RAS" else point, where)
    if fcsv.version is None and not result.points and not result.instances:
        raise LandmarkError(f"{path} is not an fcsv file: no '# Markups fiducial file version' header and no rows")
    return result


# header columns of the coordinates -> the system they imply (None: declared elsewhere); l,p,s / r,a,s and a
# 'defined' column are Slicer's markups table export (.csv)
_AXES = ((("x", "y", "z"), None), (("i", "j", "k"), "voxel"), (("l", "p", "s"), "LPS"), (("r", "a", "s"), "RAS"),
         (("x", "y"), None), (("i", "j"), "voxel"))   # the last two: points on a 2D image, at z = 0 (k = 0)
_NAME_COLUMNS = ("name", "label", "landmark")


@dataclass
class _CsvColumns:
    name: int
    xyz: List[int]
    system: Optional[str]            # implied by the coordinate columns (i,j,k, l,p,s, r,a,s)
    width: int                       # fields a row may have
    defined: Optional[int] = None    # Slicer's 'defined' column: 0 = no position


def _named_columns(header: List[str], path: str) -> _CsvColumns:
    """Header row (any case) -> its columns."""
    keys = [h.strip().lower() for h in header]
    name = next((keys.index(k) for k in _NAME_COLUMNS if k in keys), None)
    for axes, system in _AXES:
        if name is not None and all(a in keys for a in axes):
            return _CsvColumns(name, [keys.index(a) for a in axes], system, len(keys),
                               keys.index("defined") if "defined" in keys else None)
    raise LandmarkError(f"{path}: header {header} needs a name column (name/label/landmark) and x,y,z "
                        f"(or i,j,k for voxel indices, or Slicer's l,p,s / r,a,s; x,y or i,j on 2D images)")


def _csv_delimiter(lines: List[str], path: str) -> Tuple[str, int]:
    """(delimiter, number of leading lines to skip): Excel's ``sep=;`` first line, else ';' or tab where the first
    row splits into name and two or three coordinates by it (European Excel writes ';' with decimal commas), else ','."""
    if lines and lines[0].strip().lower().startswith("sep=") and len(lines[0].strip()) == 5:
        return lines[0].strip()[4], 1
    first = next((line for line in lines if line.strip() and not line.startswith("#")), "")
    for delimiter in (";", "\t"):
        if len(_fields(first, path, delimiter)) >= 3:
            return delimiter, 0
    return ",", 0


def _coordinate_text(value: str, delimiter: str) -> str:
    """A coordinate field as float() reads it: with ';' as delimiter a ',' is the decimal mark."""
    return value.replace(",", ".") if delimiter == ";" else value


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _read_csv(path: str, repeatable: Collection[str] = ()) -> LandmarkFile:
    """``name,x,y,z`` rows, header optional and in any case (``i,j,k`` columns mean voxel, Slicer's ``l,p,s`` /
    ``r,a,s`` world LPS / RAS); ``# coordinate_system = LPS`` lines declare the system; a row with empty
    coordinates is a missing landmark. ';'-separated files with decimal commas (European Excel) are read too.
    ``name,x,y`` (or ``i,j``) rows are points on a 2D image: z = 0 and the file is ``planar``."""
    lines = _text_lines(path)
    delimiter, skip = _csv_delimiter(lines, path)
    declared, columns = None, None
    result = LandmarkFile(repeatable=repeatable)
    for number, line in enumerate(lines[skip:], start=skip + 1):
        where = f"{path} line {number}"
        if not line.strip():
            continue
        if line.startswith("#"):
            key, _, value = line[1:].partition("=")
            if key.strip().lower().replace(" ", "_") in ("coordinate_system", "coordinatesystem"):
                declared = parse_coordinate_system(value, where)
            continue
        fields = [f.strip() for f in _fields(line, where, delimiter)]
        if columns is None:
            if all(not v or _is_number(_coordinate_text(v, delimiter)) for v in fields[1:4]):
                axes = [1, 2] if len(fields) == 3 else [1, 2, 3]   # name,x,y: a point on a 2D image
                columns = _CsvColumns(0, axes, None, len(axes) + 1)
            else:
                columns = _named_columns(fields, path)
                continue
        while len(fields) > columns.width and not fields[-1]:
            fields.pop()  # trailing separators, as spreadsheets write them
        if len(fields) > columns.width:
            hint = ("decimal commas in a comma-separated file? save it with '.' decimals" if delimiter == "," else
                    f"a name with an unquoted '{delimiter}'? quote it")
            raise LandmarkError(f"{where}: {len(fields)} fields, expected {columns.width}: {hint}")
        if len(fields) <= max(columns.name, *columns.xyz):
            raise LandmarkError(f"{where}: {len(fields)} fields, expected name and "
                                f"{['two', 'three'][len(columns.xyz) - 2]} coordinates")
        name = fields[columns.name]
        if not name:
            raise LandmarkError(f"{where}: a landmark without a name")
        values = [_coordinate_text(fields[c], delimiter) for c in columns.xyz]
        values += ["0"] * (3 - len(values)) if any(values) else []   # 2D: on the image's plane
        undefined = columns.defined is not None and columns.defined < len(fields) and \
            fields[columns.defined].lower() in ("0", "false")
        if undefined or not any(values):
            result.add(name, None, where)
        elif delimiter != ";" and any("," in v for v in values):
            raise LandmarkError(f"{where} landmark '{name}': coordinates {values} have decimal commas: save the "
                                f"file with '.' decimals")
        else:
            result.add(name, finite_point(values, f"{where} landmark '{name}'"), where)
    if result.empty and not (repeatable and columns is not None):   # a header alone: no instance in this case
        raise LandmarkError(f"{path} holds no landmark rows")
    if columns.system and declared not in (None, columns.system):
        raise LandmarkError(f"{path}: its columns mean {columns.system} coordinates but the file declares {declared}")
    result.coordinate_system = columns.system or declared
    result.planar = len(columns.xyz) == 2
    return result


def _no_duplicate_keys(path: str):
    def hook(pairs):
        keys = [k for k, _ in pairs]
        duplicated = next((k for k in keys if keys.count(k) > 1), None)
        if duplicated is not None:
            raise LandmarkError(f"{path}: landmark '{duplicated}' appears twice")
        return dict(pairs)
    return hook


_JSON_SHAPES = '[x, y, z], null, {"x", "y", "z"} or {"position": [x, y, z]}'
_POSITION_KEYS = ("world", "position", "point", "coordinates")


def _shape(value) -> str:
    """What a JSON value looks like, for a message."""
    if isinstance(value, dict):
        return f"an object with keys {', '.join(map(str, value))}" if value else "an empty object"
    if isinstance(value, list):
        return f"a list of {len(value)} values"
    return json.dumps(value)


def _json_point(value, where: str) -> Optional[np.ndarray]:
    """One landmark's JSON value -> its point, or None where it is null/"" or ``"present": false`` (nnlandmark's
    prediction files). Any other shape is refused, never read as missing."""
    if value is None or value == "":
        return None
    if isinstance(value, list):
        return finite_point(value, where)
    if isinstance(value, dict):
        keys = {str(k).lower(): v for k, v in value.items()}
        if keys.get("present") is False:
            return None
        if all(a in keys for a in "xyz"):
            xyz = [keys[a] for a in "xyz"]
            return None if all(v is None for v in xyz) else finite_point(xyz, where)
        key = next((k for k in _POSITION_KEYS if k in keys), None)
        if key is not None:
            return _json_point(keys[key], f"{where} {key}")
    raise LandmarkError(f"{where} is {_shape(value)}; expected {_JSON_SHAPES}")


def _json_entries(entries: list, path: str) -> List[Tuple[str, dict]]:
    """A list of ``{"name" | "label": ..., "x", "y", "z" | "position": [...]}`` -> (name, the rest of the entry)."""
    named = []
    for n, entry in enumerate(entries, start=1):
        keys = {str(k).lower(): k for k in entry} if isinstance(entry, dict) else {}
        name_key = next((keys[k] for k in _NAME_COLUMNS if k in keys), None)
        if name_key is None:
            raise LandmarkError(f'{path}: entry {n} is {_shape(entry)}; expected an object {{"name": ..., "x", "y", '
                                f'"z"}} or {{"name": ..., "position": [x, y, z]}}')
        named.append((str(entry[name_key]), {k: v for k, v in entry.items() if k != name_key}))
    return named


def _read_json(path: str, repeatable: Collection[str] = ()) -> LandmarkFile:
    """``{name: [x, y, z] | null}`` or ``{"coordinate_system": ..., "landmarks": {...}}`` (which also reads
    nnlandmark's own prediction files), a value also as ``{"x", "y", "z"}`` or ``{"position" | "point" |
    "coordinates" | "world": [...]}``; or a list of ``{"name", "x", "y", "z"}``. A multi-instance class
    (``repeatable``) is a list of such values, or repeated entries of the list. A Slicer markups file saved as
    ``.json`` is read as one."""
    doc = read_json(path, object_pairs_hook=_no_duplicate_keys(path))
    if isinstance(doc, dict) and isinstance(doc.get("markups"), list) and all(isinstance(m, dict)
                                                                                for m in doc["markups"]):
        return _read_mrk_json(path, _checked_markups(doc, path), repeatable)
    system, landmarks = None, doc
    if isinstance(doc, dict) and ("landmarks" in doc or "coordinate_system" in doc):
        if "coordinate_system" in doc:
            system = parse_coordinate_system(doc["coordinate_system"], f"{path} coordinate_system")
        landmarks = doc["landmarks"] if "landmarks" in doc else {k: v for k, v in doc.items()
                                                                 if k != "coordinate_system"}
    if isinstance(landmarks, list):
        landmarks = _json_entries(landmarks, path)
    elif isinstance(landmarks, dict):
        landmarks = [(str(name), value) for name, value in landmarks.items()]
    else:
        raise LandmarkError(f'{path}: expected an object {{name: [x, y, z]}} or a list of {{"name", "x", "y", "z"}}, '
                            f"not {_shape(landmarks)}")
    result = LandmarkFile(coordinate_system=system, repeatable=repeatable)
    for name, value in landmarks:
        if not name.strip():
            raise LandmarkError(f"{path}: a landmark without a name")
        where = f"{path}: landmark '{name}'"
        several = name in repeatable and isinstance(value, list) and all(isinstance(v, (list, dict)) for v in value)
        for point in ([_json_point(v, where) for v in value] if several else [_json_point(value, where)]):
            result.add(name, point, where)
    if result.empty and not any(name in repeatable for name, _ in landmarks):
        raise LandmarkError(f"{path} holds no landmarks")
    return result


def read_landmark_file(path: str, coordinate_system: Optional[str] = None,
                       repeatable: Collection[str] = ()) -> LandmarkFile:
    """Any supported annotation file -> LandmarkFile with a resolved system. ``coordinate_system`` applies only to
    files that do not declare their own (CSV/JSON); Slicer files always come back as world LPS. ``repeatable``: the
    multi-instance classes, whose points go to ``instances`` (a name not in the file: no instance)."""
    lower = path.lower()
    if lower.endswith(".mrk.json"):
        return _read_mrk_json(path, read_markups(path), repeatable)
    if lower.endswith(".fcsv"):
        return _read_fcsv(path, repeatable)
    if lower.endswith(".csv"):
        result = _read_csv(path, repeatable)
    elif lower.endswith(".json"):
        result = _read_json(path, repeatable)
    else:
        raise LandmarkError(f"{path}: unknown landmark file type (use {', '.join(LANDMARK_FILE_ENDINGS)})")
    if result.coordinate_system is None:
        if coordinate_system is None:
            raise LandmarkError(f"{path} does not say its coordinate system: pass --coordinate-system lps, ras or "
                                f"voxel")
        result.coordinate_system = parse_coordinate_system(coordinate_system)
    if result.coordinate_system == "RAS":
        result.points = {name: lps_to_ras(p) for name, p in result.points.items()}
        result.instances = {name: [lps_to_ras(p) for p in points] for name, points in result.instances.items()}
        result.coordinate_system = "LPS"
    return result
