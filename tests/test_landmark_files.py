"""Slicer .mrk.json / .fcsv and CSV landmark files: round trips, RAS input, legacy fcsv, errors, --format."""
import csv
import json
import re

import numpy as np
import pytest

from nnlandmark.commands import predict
from nnlandmark.errors import LandmarkError
from nnlandmark.io.landmark_files import read_fcsv, read_mrk_json, write_csv, write_fcsv, write_mrk_json
from nnlandmark.io.predictions import parse_formats, write_prediction_formats

POINTS = {"nasion": [10.0, -20.5, 3.0], "sella": [0.125, 1e-7, -123.456789012345],
          "left, ear": [10, 20, 30]}  # integers and a comma in a name on purpose


def assert_same(read, expected):
    assert list(read) == list(expected)
    for name in expected:
        np.testing.assert_allclose(read[name], expected[name], rtol=0, atol=1e-9)


@pytest.mark.parametrize("system", ["LPS", "RAS"])
def test_mrk_json_round_trip(tmp_path, system):
    path = tmp_path / "a.mrk.json"
    write_mrk_json(str(path), POINTS, coordinate_system=system)
    doc = json.loads(path.read_text())
    markup = doc["markups"][0]
    assert doc["@schema"].endswith("markups-schema-v1.0.3.json#")
    assert (markup["type"], markup["coordinateSystem"], markup["coordinateUnits"]) == ("Fiducial", system, "mm")
    assert [p["id"] for p in markup["controlPoints"]] == ["1", "2", "3"]
    assert all(p["positionStatus"] == "defined" for p in markup["controlPoints"])
    assert_same(read_mrk_json(str(path)), POINTS)


def test_mrk_json_positions_are_float_literals(tmp_path):
    path = tmp_path / "a.mrk.json"
    write_mrk_json(str(path), {"a": [10, 20, 30], "b": np.array([1, 2, 3])})
    text = path.read_text()
    numbers = re.findall(r'"position": \[([^\]]*)\]', text, flags=re.S)
    assert len(numbers) == 2
    for group in numbers:
        values = [v.strip() for v in group.split(",")]
        assert all(re.fullmatch(r"-?\d+\.\d+", v) for v in values), values
    assert "10.0" in text and re.search(r"\b10\s*,", text) is None


def test_mrk_json_ras_is_negated_on_reading(tmp_path):
    path = tmp_path / "ras.mrk.json"
    path.write_text(json.dumps({"markups": [{"type": "Fiducial", "coordinateSystem": "RAS",
                                             "controlPoints": [{"id": "1", "label": "AC",
                                                                "position": [1.5, -2.0, 3.25]}]}]}))
    assert_same(read_mrk_json(str(path)), {"AC": [-1.5, 2.0, 3.25]})


def test_mrk_json_undefined_points_are_skipped(tmp_path):
    path = tmp_path / "u.mrk.json"
    points = [{"id": "1", "label": "a", "position": [1.0, 2.0, 3.0], "positionStatus": "defined"},
              {"id": "2", "label": "b", "position": "", "positionStatus": "undefined"},
              {"id": "3", "label": "c", "position": [4.0, 5.0, 6.0], "positionStatus": "preview"},
              {"id": "4", "label": "d", "position": ""}]
    path.write_text(json.dumps({"markups": [{"type": "Fiducial", "coordinateSystem": "LPS",
                                             "controlPoints": points}]}))
    assert_same(read_mrk_json(str(path)), {"a": [1.0, 2.0, 3.0]})


def test_fcsv_round_trip_and_header(tmp_path):
    path = tmp_path / "a.fcsv"
    write_fcsv(str(path), POINTS)
    lines = path.read_text().splitlines()
    assert lines[:3] == ["# Markups fiducial file version = 5.3", "# CoordinateSystem = LPS",
                         "# columns = id,x,y,z,ow,ox,oy,oz,vis,sel,lock,label,desc,associatedNodeID"]
    assert lines[3].startswith("1,10.0,-20.5,3.0,0,0,0,1,1,1,0,nasion,")
    assert '"left, ear"' in lines[5]
    assert_same(read_fcsv(str(path)), POINTS)


def test_fcsv_afids_style_4_6_ras(tmp_path):
    path = tmp_path / "afids.fcsv"
    path.write_text("# Markups fiducial file version = 4.6\n# CoordinateSystem = 0\n"
                    "# columns = id,x,y,z,ow,ox,oy,oz,vis,sel,lock,label,desc,associatedNodeID\n"
                    "vtkMRMLMarkupsFiducialNode_1,0.5,2.25,-4,0,0,0,1,1,1,0,1,AC,,vtkMRMLScalarVolumeNode1\n"
                    "vtkMRMLMarkupsFiducialNode_2,-1,-3.5,7.125,0,0,0,1,1,1,0,2,PC,,vtkMRMLScalarVolumeNode1\n")
    # 15 fields in these rows (label, desc, an empty field, node id): allowed by the 14-16 rule
    assert_same(read_fcsv(str(path)), {"1": [-0.5, -2.25, -4.0], "2": [1.0, 3.5, 7.125]})


@pytest.mark.parametrize("system, sign", [("RAS", -1), ("0", -1), ("LPS", 1), ("1", 1), (None, 1)])
def test_fcsv_coordinate_systems(tmp_path, system, sign):
    header = "# Markups fiducial file version = 5.3\n"
    if system is not None:
        header += f"# CoordinateSystem = {system}\n"
    path = tmp_path / "s.fcsv"
    path.write_text(header + '1,1.0,2.0,3.0,0,0,0,1,1,1,0,"a, b",,,defined,0\n')
    assert_same(read_fcsv(str(path)), {"a, b": [sign * 1.0, sign * 2.0, 3.0]})


def test_csv_with_and_without_voxels(tmp_path):
    plain, with_voxel = tmp_path / "a.csv", tmp_path / "b.csv"
    write_csv(str(plain), POINTS)
    voxels = {name: [1, 2.5, 3] for name in POINTS}
    write_csv(str(with_voxel), POINTS, voxel=voxels)
    rows = list(csv.reader(plain.open()))
    assert rows[0] == ["name", "x", "y", "z"] and rows[3][0] == "left, ear"
    rows = list(csv.DictReader(with_voxel.open()))
    assert list(rows[0]) == ["name", "x", "y", "z", "i", "j", "k"]
    for row in rows:
        np.testing.assert_allclose([float(row[c]) for c in "xyz"], POINTS[row["name"]], atol=1e-9)
        assert [float(row[c]) for c in "ijk"] == [1.0, 2.5, 3.0]


@pytest.mark.parametrize("name, text", [
    ("bad.mrk.json", "{not json"),
    ("nomarkups.mrk.json", '{"foo": 1}'),
    ("badpos.mrk.json", '{"markups": [{"controlPoints": [{"label": "a", "position": [1, "x", 3]}]}]}'),
    ("badsystem.mrk.json", '{"markups": [{"coordinateSystem": "IJK", "controlPoints": []}]}'),
])
def test_corrupt_mrk_json_names_the_file(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(LandmarkError, match=re.escape(str(path))):
        read_mrk_json(str(path))


@pytest.mark.parametrize("body, line", [
    ("# Markups fiducial file version = 5.3\n1,1,2,3,0,0,0,1\n", 2),
    ("# Markups fiducial file version = 5.3\n# CoordinateSystem = LPS\n1,a,2,3,0,0,0,1,1,1,0,x,,\n", 3),
    ("# Markups fiducial file version = 5.3\n# CoordinateSystem = 7\n", 2),
    ("# Markups fiducial file version = 3.0\n", 1),
])
def test_corrupt_fcsv_names_file_and_line(tmp_path, body, line):
    path = tmp_path / "bad.fcsv"
    path.write_text(body)
    with pytest.raises(LandmarkError, match=re.escape(f"{path} line {line}")):
        read_fcsv(str(path))


def test_missing_files_name_the_file(tmp_path):
    for reader in (read_fcsv, read_mrk_json):
        with pytest.raises(LandmarkError, match="nothere"):
            reader(str(tmp_path / "nothere"))


def _prediction(case="case_001"):
    return {"case": case, "image": "imagesTs/case_001_0000.nii.gz", "coordinate_system": "LPS",
            "landmarks": {"nasion": {"label": 1, "voxel": [10.5, 20.0, 3.25], "world": [-5.0, 12.5, 40.0],
                                     "likelihood": 0.9},
                          "sella": {"label": 2, "voxel": [1.0, 2.0, 3.0], "world": [0.1, -0.2, 0.3],
                                    "likelihood": 0.8}}}


def test_write_prediction_formats_writes_all_files(tmp_path):
    prediction = _prediction()
    json_path = tmp_path / "case_001.json"
    json_path.write_text(json.dumps(prediction))
    written = write_prediction_formats(prediction, str(tmp_path), parse_formats("json,mrk.json,fcsv,csv"))
    assert sorted(p.split("/")[-1] for p in written) == ["case_001.csv", "case_001.fcsv", "case_001.mrk.json"]
    world = {n: e["world"] for n, e in prediction["landmarks"].items()}
    assert_same(read_mrk_json(str(tmp_path / "case_001.mrk.json")), world)
    assert_same(read_fcsv(str(tmp_path / "case_001.fcsv")), world)
    rows = list(csv.DictReader((tmp_path / "case_001.csv").open()))
    assert [r["name"] for r in rows] == ["nasion", "sella"]
    assert [float(rows[0][c]) for c in "ijk"] == [10.5, 20.0, 3.25]
    assert json.loads(json_path.read_text()) == prediction  # CASE.json untouched
    assert not list(tmp_path.glob("*.tmp*"))
    assert write_prediction_formats(prediction, str(tmp_path), ["json"]) == []


def test_unknown_format_lists_allowed(tmp_path):
    with pytest.raises(LandmarkError, match="json, mrk.json, fcsv, csv"):
        parse_formats("json,nrrd")
    with pytest.raises(LandmarkError, match="nrrd"):
        write_prediction_formats(_prediction(), str(tmp_path), ["nrrd"])


def test_predict_rejects_unknown_format_before_loading_a_model(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        predict.main(["-i", str(tmp_path), "-o", str(tmp_path / "o"), "-d", "1", "--format", "json,xyz"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ") and "xyz" in err and "mrk.json" in err


def test_fcsv_undefined_point_is_skipped(tmp_path):
    path = tmp_path / "u.fcsv"
    path.write_text("# Markups fiducial file version = 5.3\n# CoordinateSystem = LPS\n"
                    "# columns = id,x,y,z,ow,ox,oy,oz,vis,sel,lock,label,desc,associatedNodeID,positionStatus,"
                    "autoCreated\n"
                    "1,1,2,3,0,0,0,1,1,1,0,a,,,defined,0\n2,0,0,0,0,0,0,1,1,1,0,b,,,undefined,0\n")
    assert_same(read_fcsv(str(path)), {"a": [1.0, 2.0, 3.0]})
