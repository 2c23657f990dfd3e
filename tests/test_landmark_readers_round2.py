"""Landmark files as users really hand them in: Slicer markups that are not point lists, JSON shapes of other tools,
a UTF-8 BOM, European Excel CSV, Slicer's markups table CSV, and files that are broken in plausible ways."""
import json

import numpy as np
import pytest
import SimpleITK as sitk

from nnlandmark.commands import convert as convert_command
from nnlandmark.errors import LandmarkError
from nnlandmark.io.landmark_files import (LandmarkFileWarning, markup_control_points, read_landmark_file,
                                          read_markups, write_fcsv, write_mrk_json)


def fiducials(*labels_and_positions, kind="Fiducial", name=None):
    markup = {"type": kind, "coordinateSystem": "LPS", "coordinateUnits": "mm",
              "controlPoints": [{"id": str(i), "label": label, "position": position, "positionStatus": "defined"}
                                for i, (label, position) in enumerate(labels_and_positions, start=1)]}
    return {**markup, "name": name} if name else markup


def markups_file(path, *markups):
    path.write_text(json.dumps({"@schema": "https://example/markups-schema-v1.0.3.json#", "markups": list(markups)}))
    return str(path)


def refused(path, flag="lps"):
    """The LandmarkError message of reading ``path``; it must name the file and be one line."""
    with pytest.raises(LandmarkError) as e:
        read_landmark_file(str(path), flag)
    message = str(e.value)
    assert str(path) in message and "\n" not in message
    return message


def points_of(result):
    return {name: p.tolist() for name, p in result.points.items()}


# 1. Slicer markups that are not point lists

def test_point_list_is_read_and_a_line_beside_it_is_skipped_with_a_warning(tmp_path):
    path = markups_file(tmp_path / "a.mrk.json",
                        fiducials(("nasion", [1.0, 2.0, 3.0]), ("sella", [4.0, 5.0, 6.0])),
                        fiducials(("L-1", [0.0, 0.0, 0.0]), ("L-2", [9.0, 9.0, 9.0]), kind="Line", name="L"))
    with pytest.warns(LandmarkFileWarning) as caught:
        result = read_landmark_file(path)
    assert [str(w.message) for w in caught] == [f"{path}: skipped 1 markup that is not a point list (Line 'L')"]
    assert points_of(result) == {"nasion": [1.0, 2.0, 3.0], "sella": [4.0, 5.0, 6.0]} and result.missing == []


def test_two_skipped_markups_are_both_named(tmp_path):
    path = markups_file(tmp_path / "a.mrk.json", fiducials(("a", [1.0, 2.0, 3.0]), kind="PointList"),
                        fiducials(("c", [0.0, 0.0, 0.0]), kind="Curve", name="C"),
                        fiducials(("p", [0.0, 0.0, 0.0]), kind="Plane"))
    with pytest.warns(LandmarkFileWarning, match=r"skipped 2 markups that are not point lists \(Curve 'C', Plane "
                                                 r"\(markup 3\)\)"):
        assert points_of(read_landmark_file(path)) == {"a": [1.0, 2.0, 3.0]}


@pytest.mark.parametrize("kind", ["Curve", "ClosedCurve", "Line", "Angle", "Plane", "ROI"])
def test_a_file_without_a_point_list_is_refused(tmp_path, kind):
    path = markups_file(tmp_path / "a.mrk.json", fiducials(("p1", [1.0, 2.0, 3.0]), ("p2", [4.0, 5.0, 6.0]),
                                                           kind=kind, name="M"))
    assert refused(path) == (f"{path} holds no point list (Fiducial/PointList) markup, only {kind} 'M': export the "
                             f"landmarks as a point list")


def test_empty_markups_are_refused(tmp_path):
    assert "holds no markups" in refused(markups_file(tmp_path / "none.mrk.json"))
    assert "holds no control points" in refused(markups_file(tmp_path / "empty.mrk.json", fiducials()))


def test_the_benchmark_row_parsers_still_read_lines(tmp_path):
    """The LFC converter reads Line markups on purpose through read_markups / markup_control_points."""
    path = markups_file(tmp_path / "1.mrk.json", fiducials(("1", [1.0, 2.0, 3.0]), ("2", [4.0, 5.0, 6.0]),
                                                           kind="Line"))
    (markup,) = read_markups(path)
    assert [(n, p.tolist()) for n, p in markup_control_points(markup, path)] == [("1", [1.0, 2.0, 3.0]),
                                                                                 ("2", [4.0, 5.0, 6.0])]


# 2. JSON shapes

@pytest.mark.parametrize("doc", [
    {"a": {"x": 1, "y": 2.5, "z": -3}, "b": {"x": 4, "y": 5, "z": 6}, "c": None},
    {"a": {"X": 1, "Y": 2.5, "Z": -3}, "b": {"X": 4, "Y": 5, "Z": 6}, "c": None},
    {"a": {"position": [1, 2.5, -3]}, "b": {"point": [4, 5, 6]}, "c": {"coordinates": None}},
    {"a": {"coordinates": [1, 2.5, -3]}, "b": {"world": [4, 5, 6]}, "c": {"x": None, "y": None, "z": None}},
    [{"name": "a", "x": 1, "y": 2.5, "z": -3}, {"label": "b", "position": [4, 5, 6]}, {"Name": "c", "position": None}],
    {"coordinate_system": "LPS", "landmarks": [{"name": "a", "X": 1, "Y": 2.5, "Z": -3},
                                               {"landmark": "b", "point": [4, 5, 6]}, {"name": "c", "x": None,
                                                                                       "y": None, "z": None}]},
    {"landmarks": {"a": {"world": [1, 2.5, -3], "present": True}, "b": {"world": [4, 5, 6]},
                   "c": {"world": [7, 8, 9], "present": False}}},
])
def test_json_shapes_of_other_tools_are_read(tmp_path, doc):
    (tmp_path / "a.json").write_text(json.dumps(doc))
    result = read_landmark_file(str(tmp_path / "a.json"), "lps")
    assert points_of(result) == {"a": [1.0, 2.5, -3.0], "b": [4.0, 5.0, 6.0]} and result.missing == ["c"]


@pytest.mark.parametrize("doc,message", [
    ({"a": {"pos": [1, 2, 3]}}, "landmark 'a' is an object with keys pos; expected [x, y, z], null"),
    ({"a": {"x": 1, "y": 2}}, "landmark 'a' is an object with keys x, y; expected"),
    ({"a": {}}, "landmark 'a' is an empty object"),
    ({"a": "1, 2, 3"}, "landmark 'a' is \"1, 2, 3\"; expected"),
    ({"a": 7}, "landmark 'a' is 7; expected"),
    ({"a": True}, "landmark 'a' is true; expected"),
    ({"a": [True, False, True]}, "landmark 'a': position [True, False, True] is not three numbers"),
    ({"a": [1, 2]}, "landmark 'a': position [1, 2] is not three finite numbers"),
    ({"a": [1, 2, 3, 4]}, "landmark 'a': position [1, 2, 3, 4] is not three finite numbers"),
    ({"a": {"x": 1, "y": None, "z": 3}}, "landmark 'a': position [1, None, 3] is not three numbers"),
    ({"a": {"position": [1, "NaN", 3]}}, "landmark 'a' position: position [1, 'NaN', 3] is not three finite"),
    ({"": [1, 2, 3]}, "a landmark without a name"),
    ([{"x": 1, "y": 2, "z": 3}], 'entry 1 is an object with keys x, y, z; expected an object {"name": ...'),
    ([{"name": "a", "x": 1, "y": 2, "z": 3}, {"name": "a", "x": 1, "y": 2, "z": 3}], "landmark 'a' appears twice"),
    ("a 1 2 3", "expected an object {name: [x, y, z]} or a list"),
])
def test_json_shapes_we_do_not_read_are_refused_never_missing(tmp_path, doc, message):
    (tmp_path / "a.json").write_text(json.dumps(doc))
    assert message in refused(tmp_path / "a.json")


def test_a_slicer_markups_file_saved_as_json_is_read_as_markups(tmp_path):
    path = markups_file(tmp_path / "a.json", fiducials(("a", [1.0, 2.0, 3.0])))
    result = read_landmark_file(path)  # no --coordinate-system needed: markups say theirs
    assert points_of(result) == {"a": [1.0, 2.0, 3.0]} and result.coordinate_system == "LPS"


def test_json_coordinate_system_next_to_the_landmarks_is_taken(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"coordinate_system": "RAS", "a": [1, 2, 3]}))
    assert points_of(read_landmark_file(str(tmp_path / "a.json"))) == {"a": [-1.0, -2.0, 3.0]}


# 3. UTF-8 BOM

def test_a_utf8_bom_is_accepted_in_every_format(tmp_path):
    write_mrk_json(str(tmp_path / "a.mrk.json"), {"a": [1.0, 2.0, 3.0]})
    write_fcsv(str(tmp_path / "a.fcsv"), {"a": [1.0, 2.0, 3.0]})
    (tmp_path / "a.csv").write_text("name,x,y,z\na,1,2,3\n")
    (tmp_path / "a.json").write_text('{"a": [1, 2, 3]}')
    for file in ("a.mrk.json", "a.fcsv", "a.csv", "a.json"):
        text = (tmp_path / file).read_text(encoding="utf-8")
        (tmp_path / f"bom_{file}").write_text(text, encoding="utf-8-sig")
        assert (tmp_path / f"bom_{file}").read_bytes()[:3] == b"\xef\xbb\xbf"
        assert points_of(read_landmark_file(str(tmp_path / f"bom_{file}"), "lps")) == {"a": [1.0, 2.0, 3.0]}


# 4. European Excel CSV, header case, Slicer's markups table

@pytest.mark.parametrize("text", [
    "Name;X;Y;Z\na;1,5;-2,25;3\nb;;;\n",
    "sep=;\nname;x;y;z\na;1,5;-2,25;3\nb;;;\n",
    "a;1,5;-2,25;3\nb;;;\n",
    "a;1.5;-2.25;3;\nb;;;\n",
    "NAME\tX\tY\tZ\na\t1.5\t-2.25\t3\nb\t\t\t\n",
    "LANDMARK,X,Y,Z\na,1.5,-2.25,3,,\nb,,,\n",
])
def test_semicolon_tab_and_other_case_csv_are_read_with_their_decimals(tmp_path, text):
    (tmp_path / "a.csv").write_text(text)
    result = read_landmark_file(str(tmp_path / "a.csv"), "lps")
    assert points_of(result) == {"a": [1.5, -2.25, 3.0]} and result.missing == ["b"]


@pytest.mark.parametrize("text,message", [
    ("name,x,y,z\na,1,5,-2,25,3,0\n", "line 2: 7 fields, expected 4: decimal commas in a comma-separated file?"),
    ("a,1,5,-2,25,3,0\n", "line 1: 7 fields, expected 4: decimal commas"),
    ('name,x,y,z\na,"1,5",2,3\n', "line 2 landmark 'a': coordinates ['1,5', '2', '3'] have decimal commas"),
    ("name;x;y;z\na;1.234,5;2;3\n", "line 2 landmark 'a': position ['1.234.5', '2', '3'] is not three numbers"),
    ("name;x;y;z\nleft;eye;1,5;2;3\n", "line 2: 5 fields, expected 4: a name with an unquoted ';'? quote it"),
])
def test_decimal_commas_are_never_read_as_two_fields(tmp_path, text, message):
    (tmp_path / "a.csv").write_text(text)
    assert message in refused(tmp_path / "a.csv")


def test_slicer_markups_table_csv_is_read_in_its_system(tmp_path):
    (tmp_path / "ras.csv").write_text("label,r,a,s,defined,selected,visible,locked,description\n"
                                      "F-1,1.5,-2,3,1,1,1,0,\nF-2,0,0,0,0,1,1,0,not placed\n")
    (tmp_path / "lps.csv").write_text("label,l,p,s,defined,selected,visible,locked,description\n"
                                      "F-1,1.5,-2,3,1,1,1,0,\n")
    ras = read_landmark_file(str(tmp_path / "ras.csv"))  # the columns say the system: no flag needed
    assert points_of(ras) == {"F-1": [-1.5, 2.0, 3.0]} and ras.missing == ["F-2"]
    assert points_of(read_landmark_file(str(tmp_path / "lps.csv"), "ras")) == {"F-1": [1.5, -2.0, 3.0]}
    (tmp_path / "both.csv").write_text("# coordinate_system = LPS\nlabel,r,a,s\nF-1,1,2,3\n")
    assert "its columns mean RAS coordinates but the file declares LPS" in refused(tmp_path / "both.csv")


# 5. Other plausible breakage: one line naming the file, never a traceback or a wrong point

@pytest.mark.parametrize("file,content,message", [
    ("a.csv", "", "holds no landmark rows"),
    ("a.csv", "name,x,y,z\n", "holds no landmark rows"),
    ("a.fcsv", "", "is not an fcsv file"),
    ("a.json", "", "is not a readable JSON file"),
    ("a.mrk.json", "", "is not a readable markups JSON"),
    ("a.csv", "name,x,y,z\na,nan,2,3\n", "line 2 landmark 'a': position ['nan', '2', '3'] is not three finite"),
    ("a.csv", "name,x,y,z\na,1,2,inf\n", "is not three finite numbers"),
    ("a.json", '{"a": [1, 2, NaN]}', "is not three finite numbers"),
    ("a.csv", "n\x00a\x00m\x00e\x00,\x00x\x00\n", "holds NUL characters (UTF-16 text or a binary file?)"),
    ("a.csv", "name,x,y,z\n" + "a" * 200_000 + ",1,2,3\n", "line 2 is not a readable CSV row"),
    ("a.fcsv", "# Markups fiducial file version = 5.3\n,1,2,3,0,0,0,1,1,1,0,,,\n", "line 2: a landmark without a "
                                                                                      "label or id"),
    ("a.mrk.json", json.dumps({"markups": [fiducials(("a", [1, True, 3]))]}), "is not three numbers"),
    ("a.mrk.json", json.dumps({"markups": [fiducials(("a", "1,2,3"))]}), "control point 'a': position '1,2,3' is "
                                                                          "not three numbers"),
])
def test_plausibly_broken_files_name_the_file_and_the_problem(tmp_path, file, content, message):
    (tmp_path / file).write_text(content, encoding="utf-8")
    assert message in refused(tmp_path / file)


@pytest.mark.parametrize("file", ["a.csv", "a.fcsv", "a.json", "a.mrk.json"])
def test_binary_garbage_and_directories_are_refused(tmp_path, file):
    (tmp_path / file).write_bytes(bytes(range(256)) * 4)
    assert "UnicodeDecodeError" in refused(tmp_path / file)
    (tmp_path / "d").mkdir(exist_ok=True)
    (tmp_path / "d" / file).mkdir()
    assert "IsADirectoryError" in refused(tmp_path / "d" / file)


# through nnLandmark_convert

def one_case(oblique_image, root, landmark_file, text):
    """An image in root/images and ``text`` as root/landmarks/LANDMARK_FILE."""
    (root / "images").mkdir()
    (root / "landmarks").mkdir()
    sitk.WriteImage(oblique_image(), str(root / "images" / "case0.nrrd"))
    (root / "landmarks" / landmark_file).write_text(text)
    return ["-i", str(root / "images"), "-l", str(root / "landmarks"), "-d", "41", "-n", "Round2",
            "--coordinate-system", "lps"]


def test_convert_says_which_markups_it_skipped(nnunet_dirs, capsys, oblique_image):
    index = [[3.5, 4.0, 2.25], [10.0, 9.5, 6.0]]
    world = [oblique_image().TransformContinuousIndexToPhysicalPoint(p) for p in index]
    doc = {"markups": [fiducials(("a", list(world[0])), ("b", list(world[1]))),
                       fiducials(("m1", list(world[0])), ("m2", list(world[1])), kind="Line", name="width")]}
    argv = one_case(oblique_image, nnunet_dirs, "case0.mrk.json", json.dumps(doc))
    convert_command.main(argv)
    err = capsys.readouterr().err
    assert "WARNING: " in err and "case0.mrk.json: skipped 1 markup that is not a point list (Line 'width')" in err
    voxel = json.loads((nnunet_dirs / "nnUNet_raw" / "Dataset041_Round2" / "all_landmarks_voxel.json").read_text())
    assert list(voxel["case0"]) == ["a", "b"]
    np.testing.assert_allclose([voxel["case0"]["a"], voxel["case0"]["b"]], index, atol=1e-6)


@pytest.mark.parametrize("file,text,message", [
    ("case0.json", '{"a": {"pos": [1, 2, 3]}}', "case0.json: landmark 'a' is an object with keys pos"),
    ("case0.mrk.json", json.dumps({"markups": [fiducials(("c", [1.0, 2.0, 3.0]), kind="Curve", name="C")]}),
     "case0.mrk.json holds no point list (Fiducial/PointList) markup, only Curve 'C'"),
    ("case0.csv", "name,x,y,z\na,1,5,2,5,3,5\n", "case0.csv line 2: 7 fields, expected 4: decimal commas"),
])
def test_convert_refuses_unreadable_landmarks_before_writing(nnunet_dirs, fails_with, oblique_image, file, text,
                                                             message):
    argv = one_case(oblique_image, nnunet_dirs, file, text)
    assert message in fails_with(convert_command.main, argv)
    assert list((nnunet_dirs / "nnUNet_raw").iterdir()) == []
