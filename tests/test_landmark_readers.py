"""Every landmark reader and every coordinate system against SimpleITK on an oblique, anisotropic, flipped image."""
import json

import numpy as np
import pytest

from nnlandmark.errors import LandmarkError
from nnlandmark.io.landmark_files import read_landmark_file, write_fcsv, write_mrk_json

NAMES = ["nasion", "left eye", 'tip "A"']
INDEX = np.array([[3.3, 4.7, 2.2], [10.5, 1.25, 7.9], [0.0, 13.0, 5.5]])


@pytest.fixture(scope="module")
def image(oblique_image):
    return oblique_image()


@pytest.fixture(scope="module")
def points(image):
    """INDEX in each coordinate system: {"lps": world LPS by SimpleITK, "ras": ..., "voxel": INDEX}."""
    lps = np.array([image.TransformContinuousIndexToPhysicalPoint(p.tolist()) for p in INDEX])
    return {"lps": lps, "ras": lps * np.array([-1, -1, 1]), "voxel": INDEX}


@pytest.fixture(scope="module")
def check_lps(image, points):
    """The result holds INDEX's points in world LPS, and SimpleITK maps them back to INDEX."""
    def check(result):
        assert result.coordinate_system == "LPS" and list(result.points) == NAMES
        assert np.allclose([result.points[n] for n in NAMES], points["lps"], atol=1e-9)
        back = [image.TransformPhysicalPointToContinuousIndex(result.points[n].tolist()) for n in NAMES]
        assert np.allclose(back, INDEX, atol=1e-9)
    return check


def q(name):
    """CSV quoting by hand, so the readers are checked against text we did not produce with the csv module."""
    return '"' + name.replace('"', '""') + '"'


def test_slicer_files_in_both_systems(tmp_path, points, check_lps):
    for system in ("LPS", "RAS"):
        write_mrk_json(str(tmp_path / f"{system}.mrk.json"), dict(zip(NAMES, points["lps"])), system)
        check_lps(read_landmark_file(str(tmp_path / f"{system}.mrk.json"), coordinate_system="voxel"))  # flag ignored
    write_fcsv(str(tmp_path / "a.fcsv"), dict(zip(NAMES, points["lps"])))
    check_lps(read_landmark_file(str(tmp_path / "a.fcsv")))


@pytest.mark.parametrize("system_line", ["RAS", "0"])
def test_afids_style_fcsv_4_6_in_ras(tmp_path, system_line, points, check_lps):
    rows = "".join(f'{i},{float(x)!r},{float(y)!r},{float(z)!r},0,0,0,1,1,1,0,{q(n)},desc {i},vtkMRMLScalarVolumeNode1\n'
                   for i, (n, (x, y, z)) in enumerate(zip(NAMES, points["ras"]), start=1))
    (tmp_path / "a.fcsv").write_text("# Markups fiducial file version = 4.6\n"
                                     f"# CoordinateSystem = {system_line}\n"
                                     "# columns = id,x,y,z,ow,ox,oy,oz,vis,sel,lock,label,desc,associatedNodeID\n"
                                     + rows)
    check_lps(read_landmark_file(str(tmp_path / "a.fcsv")))


@pytest.mark.parametrize("flag", ["lps", "ras", "voxel"])
def test_csv_and_json_take_the_declared_system(tmp_path, flag, points, check_lps):
    values = points[flag]
    quoted = [q(n) for n in NAMES]
    (tmp_path / "a.csv").write_text("name,x,y,z\n" + "".join(f"{q},{float(x)!r},{float(y)!r},{float(z)!r}\n"
                                                             for q, (x, y, z) in zip(quoted, values)))
    (tmp_path / "b.csv").write_text("".join(f"{q},{float(x)!r},{float(y)!r},{float(z)!r}\n" for q, (x, y, z) in zip(quoted, values)))
    (tmp_path / "a.json").write_text(json.dumps({n: v.tolist() for n, v in zip(NAMES, values)}))
    for file in ("a.csv", "b.csv", "a.json"):
        result = read_landmark_file(str(tmp_path / file), flag)
        if flag == "voxel":
            assert result.coordinate_system == "voxel"
            assert np.allclose([result.points[n] for n in NAMES], INDEX)
        else:
            check_lps(result)


def test_files_that_declare_their_system_override_the_flag(tmp_path, points, check_lps):
    (tmp_path / "ijk.csv").write_text("landmark,i,j,k\n" + "".join(f'{q(n)},{i},{j},{k}\n'
                                                                  for n, (i, j, k) in zip(NAMES, INDEX)))
    assert read_landmark_file(str(tmp_path / "ijk.csv"), "lps").coordinate_system == "voxel"
    (tmp_path / "ras.csv").write_text("# coordinate_system = RAS\nname,x,y,z\n" + "".join(
        f'{q(n)},{float(x)!r},{float(y)!r},{float(z)!r}\n' for n, (x, y, z) in zip(NAMES, points["ras"])))
    check_lps(read_landmark_file(str(tmp_path / "ras.csv"), "lps"))
    (tmp_path / "ras.json").write_text(json.dumps(
        {"coordinate_system": "RAS", "landmarks": {n: {"world": v.tolist()} for n, v in zip(NAMES, points["ras"])}}))
    check_lps(read_landmark_file(str(tmp_path / "ras.json"), "lps"))


def test_undefined_points_are_reported_missing(tmp_path):
    doc = {"markups": [{"type": "Fiducial", "coordinateSystem": "LPS", "controlPoints": [
        {"label": "a", "position": [1.0, 2.0, 3.0], "positionStatus": "defined"},
        {"label": "b", "position": ""},
        {"label": "c", "position": [4.0, 5.0, 6.0], "positionStatus": "undefined"}]}]}
    (tmp_path / "a.mrk.json").write_text(json.dumps(doc))
    result = read_landmark_file(str(tmp_path / "a.mrk.json"))
    assert list(result.points) == ["a"] and result.missing == ["b", "c"]
    (tmp_path / "a.csv").write_text("name,x,y,z\na,1,2,3\nb,,,\n")
    (tmp_path / "a.json").write_text('{"a": [1, 2, 3], "b": null}')
    for file in ("a.csv", "a.json"):
        assert read_landmark_file(str(tmp_path / file), "lps").missing == ["b"]


@pytest.mark.parametrize("file,content,message", [
    ("a.csv", "name,x,y,z\na,1,2,3\na,4,5,6\n", "a.csv line 3: landmark 'a' appears twice"),
    ("a.json", '{"a": [1, 2, 3], "a": [4, 5, 6]}', "a.json: landmark 'a' appears twice"),
    ("a.mrk.json", json.dumps({"markups": [{"controlPoints": [{"label": "a", "position": [1.0, 2.0, 3.0]},
                                                              {"label": "a", "position": [1.0, 2.0, 3.0]}]}]}),
     "a.mrk.json: landmark 'a' appears twice"),
    ("a.fcsv", "# Markups fiducial file version = 5.3\n1,1,2,3,0,0,0,1,1,1,0,a,,\n2,1,2,3,0,0,0,1,1,1,0,a,,\n",
     "a.fcsv line 3: landmark 'a' appears twice"),
    ("a.csv", "name,x,y,z\na,1,2\n", "a.csv line 2: 3 fields, expected name and three coordinates"),
    ("a.csv", "name,x,y,z\na,1,two,3\n", "a.csv line 2 landmark 'a': position"),
    ("a.csv", "who,where\na,1\n", "needs a name column"),
    ("a.json", '{"coordinate_system": "XYZ", "landmarks": {"a": [1, 2, 3]}}', "unknown coordinate system 'XYZ'"),
    ("a.json", '[1, 2, 3]', "expected an object"),
    ("a.json", '{"a": [1, 2, "nan"]}', "landmark 'a': position"),
    ("a.json", '{"a": [1, 2, 3', "is not a readable JSON file"),
    ("a.fcsv", "# Markups fiducial file version = 4.6\n# CoordinateSystem = 2\n", "unsupported CoordinateSystem '2'"),
    ("a.mrk.json", '{"markups": [{"coordinateSystem": "IJK", "controlPoints": []}]}',
     "unsupported coordinateSystem 'IJK'"),
    ("a.txt", "a 1 2 3", "unknown landmark file type"),
])
def test_bad_annotation_files_name_the_file_and_the_problem(tmp_path, file, content, message):
    (tmp_path / file).write_text(content)
    with pytest.raises(LandmarkError) as e:
        read_landmark_file(str(tmp_path / file), "lps")
    assert message in str(e.value) and str(tmp_path / file) in str(e.value) and "\n" not in str(e.value)


def test_csv_without_a_declared_system_is_refused(tmp_path):
    (tmp_path / "a.csv").write_text("a,1,2,3\n")
    with pytest.raises(LandmarkError, match="does not say its coordinate system: pass --coordinate-system"):
        read_landmark_file(str(tmp_path / "a.csv"))
