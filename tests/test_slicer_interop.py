"""3D Slicer's own readers and writers (the slicer-core package) against ours: our prediction files open in Slicer at
the same points and voxels, and point lists that Slicer saves read and convert to the same positions.

slicer-core comes with the ``slicer`` extra, which scripts/setup.sh (so CI) installs; without it this file is skipped.
"""
import json

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from nnlandmark.dataset_conversion.convert import convert
from nnlandmark.geometry import Geometry
from nnlandmark.io.landmark_files import read_landmark_file
from nnlandmark.io.predictions import case_prediction, write_prediction_formats

# slicer-core fills the 'slicer' namespace (PyPI's unrelated package of that name has no MRML classes)
pytest.importorskip("slicer_core", reason="3D Slicer's libraries (slicer-core) are not installed: "
                                          "pip install -e '.[slicer]'")
slicer = pytest.importorskip("slicer")
vtkMatrix4x4 = pytest.importorskip("vtkmodules.vtkCommonMath").vtkMatrix4x4

# continuous ITK indices in the 16 x 15 x 9 oblique image, corners included (a flipped axis shows there first);
# names with a comma, a quote and a non-ASCII letter, which the fcsv must quote and Slicer must read back
VOXELS = {"nasion": [3.4, 4.6, 2.2], "left, ear": [10.5, 1.2, 6.9], 'sella "S"': [0.0, 14.0, 8.0],
          "menton ß": [15.0, 0.0, 0.0]}


def ras_of(lps):
    return np.asarray(lps, float) * [-1.0, -1.0, 1.0]


def write_image(path, image):
    sitk.WriteImage(image, str(path))
    return path


def right_handed(image):
    """The oblique fixture without its flipped y axis: a rotation, whose IJK Slicer keeps as it is."""
    direction = np.array(image.GetDirection()).reshape(3, 3) @ np.diag([1.0, -1.0, 1.0])
    image.SetDirection(direction.ravel().tolist())
    return image


def slicer_ras_to_ijk(path, force_right_handed):
    """Slicer's RAS-to-IJK matrix of the image file, read by its volume reader into a scalar volume node.
    ``force_right_handed`` is Slicer's default: it reverses k of images whose direction matrix is a reflection."""
    scene = slicer.vtkMRMLScene()
    volume = scene.AddNode(slicer.vtkMRMLScalarVolumeNode())
    storage = scene.AddNode(slicer.vtkMRMLVolumeArchetypeStorageNode())
    storage.SetForceRightHandedIJKCoordinateSystem(force_right_handed)
    storage.SetFileName(str(path))
    assert storage.ReadData(volume) == 1, f"Slicer could not read {path}"
    matrix = vtkMatrix4x4()
    volume.GetRASToIJKMatrix(matrix)
    return np.array([[matrix.GetElement(row, column) for column in range(4)] for row in range(4)])


def transform(matrix, points):
    points = np.asarray(points, float)
    return points @ matrix[:3, :3].T + matrix[:3, 3]


def slicer_read(storage_class, path):
    """(point list node, its scene: keep it alive while the node is used) as Slicer's storage node reads ``path``."""
    scene = slicer.vtkMRMLScene()
    node = scene.AddNode(slicer.vtkMRMLMarkupsFiducialNode())
    storage = scene.AddNode(storage_class())
    storage.SetFileName(str(path))
    assert storage.ReadData(node) == 1, f"Slicer could not read {path}"
    return node, scene


def slicer_point_list(storage_class, path):
    """{label: RAS} of a point list read by one of Slicer's markups storage nodes; every point must be defined."""
    node, scene = slicer_read(storage_class, path)
    points = {}
    for n in range(node.GetNumberOfControlPoints()):
        assert node.GetNthControlPointPositionStatus(n) == node.PositionDefined
        ras = [0.0, 0.0, 0.0]
        node.GetNthControlPointPosition(n, ras)
        points[node.GetNthControlPointLabel(n)] = np.array(ras)
    return points


def save_slicer_point_list(storage_class, path, ras_points, coordinate_system="LPS", unplaced=(), skipped=()):
    """A point list made in Slicer (control points set in RAS; ``unplaced`` names never given a position,
    ``skipped`` ones placed and then marked missing, as Slicer's "skip" does) and saved by Slicer's storage node in
    ``coordinate_system``."""
    scene = slicer.vtkMRMLScene()
    node = scene.AddNode(slicer.vtkMRMLMarkupsFiducialNode())
    for name, ras in ras_points.items():
        node.AddControlPoint([float(v) for v in ras], name)
    for name in unplaced:
        node.UnsetNthControlPointPosition(node.AddControlPoint([0.0, 0.0, 0.0], name))
    for name in skipped:
        node.SetNthControlPointPositionMissing(node.AddControlPoint([-4.0, -5.0, 6.0], name))
    storage = scene.AddNode(storage_class())
    storage.SetCoordinateSystem(getattr(storage, f"CoordinateSystem{coordinate_system}"))
    storage.SetFileName(str(path))
    assert storage.WriteData(node) == 1, f"Slicer could not write {path}"
    return path


STORAGE = {"mrk.json": slicer.vtkMRMLMarkupsJsonStorageNode, "fcsv": slicer.vtkMRMLMarkupsFiducialStorageNode}


@pytest.mark.parametrize("handedness", ["reflection", "rotation"])
def test_our_prediction_files_open_in_slicer_at_the_same_points_and_voxels(tmp_path, oblique_image, handedness):
    image = oblique_image() if handedness == "reflection" else right_handed(oblique_image())
    image_path = write_image(tmp_path / "case_0000.nii.gz", image)
    geometry = Geometry.of_image(sitk.ReadImage(str(image_path)))
    landmarks = {name: {"label": label, "voxel": voxel, "world": geometry.index_to_world(voxel).tolist(),
                        "likelihood": 0.9, "present": True}
                 for label, (name, voxel) in enumerate(VOXELS.items(), start=1)}
    written = write_prediction_formats(case_prediction("case", image_path.name, landmarks), str(tmp_path),
                                       ["mrk.json", "fcsv"])
    assert sorted(written) == [str(tmp_path / "case.fcsv"), str(tmp_path / "case.mrk.json")]

    file_ijk = slicer_ras_to_ijk(image_path, force_right_handed=False)
    default_ijk = slicer_ras_to_ijk(image_path, force_right_handed=True)
    reflected = np.linalg.det(np.array(image.GetDirection()).reshape(3, 3)) < 0
    assert reflected == (handedness == "reflection")
    for ending, storage_class in STORAGE.items():
        points = slicer_point_list(storage_class, tmp_path / f"case.{ending}")
        assert list(points) == list(VOXELS), ending
        for name, voxel in VOXELS.items():
            np.testing.assert_allclose(points[name], ras_of(landmarks[name]["world"]), rtol=0, atol=1e-4,
                                       err_msg=f"{ending}: {name}")
            np.testing.assert_allclose(transform(file_ijk, points[name]), voxel, rtol=0, atol=1e-3,
                                       err_msg=f"{ending}: {name}")
            # what Slicer shows by default: k counted from the other end where the image is a reflection
            expected = [voxel[0], voxel[1], image.GetSize()[2] - 1 - voxel[2] if reflected else voxel[2]]
            np.testing.assert_allclose(transform(default_ijk, points[name]), expected, rtol=0, atol=1e-3,
                                       err_msg=f"{ending}: {name}")


@pytest.mark.parametrize("coordinate_system", ["LPS", "RAS"])
@pytest.mark.parametrize("ending", STORAGE)
def test_point_lists_saved_by_slicer_read_as_the_same_lps_points(tmp_path, ending, coordinate_system):
    ras = {"nasion": [1.5, -2.0, 3.25], "left, ear": [-61.125, 20.0, -0.001], "menton ß": [1e-6, 123.456789, -30.0]}
    path = save_slicer_point_list(STORAGE[ending], tmp_path / f"points.{ending}", ras, coordinate_system)
    annotation = read_landmark_file(str(path))
    assert annotation.coordinate_system == "LPS" and annotation.missing == []
    assert list(annotation.points) == list(ras)
    for name, point in ras.items():
        np.testing.assert_allclose(annotation.points[name], ras_of(point), rtol=0, atol=1e-9, err_msg=name)


@pytest.mark.parametrize("ending", STORAGE)
def test_points_left_unplaced_in_slicer_are_missing_landmarks(tmp_path, ending):
    path = save_slicer_point_list(STORAGE[ending], tmp_path / f"points.{ending}", {"nasion": [1.0, 2.0, 3.0]},
                                  unplaced=["sella"], skipped=["menton"])
    annotation = read_landmark_file(str(path))
    assert list(annotation.points) == ["nasion"] and annotation.missing == ["sella", "menton"]


def test_landmarks_predicted_absent_open_in_slicer_as_skipped_points_and_read_back_as_missing(tmp_path):
    landmarks = {name: {"label": n, "voxel": [0.0, 0.0, 0.0], "world": [float(n), 2.0, 3.0], "likelihood": 0.9,
                        "present": name != "sella"} for n, name in enumerate(["nasion", "sella"], start=1)}
    write_prediction_formats(case_prediction("case", "case_0000.nii.gz", landmarks), str(tmp_path),
                             ["mrk.json", "fcsv"])
    for ending, storage_class in STORAGE.items():
        node, scene = slicer_read(storage_class, tmp_path / f"case.{ending}")
        status = {node.GetNthControlPointLabel(n): node.GetNthControlPointPositionStatus(n)
                  for n in range(node.GetNumberOfControlPoints())}
        assert status == {"nasion": node.PositionDefined, "sella": node.PositionMissing}, ending
        annotation = read_landmark_file(str(tmp_path / f"case.{ending}"))
        assert list(annotation.points) == ["nasion"] and annotation.missing == ["sella"], ending


def test_landmarks_to_review_open_in_slicer_unselected_with_their_expected_error_as_description(tmp_path):
    landmarks = {name: {"label": n, "voxel": [0.0, 0.0, 0.0], "world": [float(n), 2.0, 3.0], "likelihood": 0.9,
                        "present": True, "expected_error_mm": error, "radius_mm": 2 * error}
                 for n, (name, error) in enumerate([("nasion", 1.0), ("sella", 5.0)], start=1)}
    write_prediction_formats(case_prediction("case", "case_0000.nii.gz", landmarks, radius_coverage=0.9),
                             str(tmp_path), ["mrk.json", "fcsv"], review_mm=4.0)
    for ending, storage_class in STORAGE.items():
        node, scene = slicer_read(storage_class, tmp_path / f"case.{ending}")
        flags = {node.GetNthControlPointLabel(n): (node.GetNthControlPointDescription(n),
                                                   bool(node.GetNthControlPointSelected(n)))
                 for n in range(node.GetNumberOfControlPoints())}
        assert flags == {"nasion": ("", True), "sella": ("review: expected error 5.0 mm, radius 10.0 mm", False)}, \
            ending


def test_slicer_point_list_converts_to_cubes_at_slicer_voxels(tmp_path, oblique_image):
    (tmp_path / "images").mkdir()
    (tmp_path / "landmarks").mkdir()
    image_path = write_image(tmp_path / "images" / "case1.nii.gz", oblique_image())
    ijk_to_ras = np.linalg.inv(slicer_ras_to_ijk(image_path, force_right_handed=False))
    ijk = {"nasion": [3.4, 4.6, 2.2], "left, ear": [10.5, 1.2, 6.9], "menton": [8.0, 11.0, 4.4]}
    save_slicer_point_list(STORAGE["mrk.json"], tmp_path / "landmarks" / "case1.mrk.json",
                           {name: transform(ijk_to_ras, voxel) for name, voxel in ijk.items()})
    folder = tmp_path / "raw" / "Dataset071_Slicer"
    assert convert(str(tmp_path / "raw"), 71, "Slicer", str(tmp_path / "images"),
                   str(tmp_path / "landmarks")) == str(folder)
    labels = json.loads((folder / "dataset.json").read_text())["labels"]
    voxel = json.loads((folder / "all_landmarks_voxel.json").read_text())["case1"]
    seg = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "labelsTr" / "case1.nii.gz")))
    for name, expected in ijk.items():
        np.testing.assert_allclose(voxel[name], expected, rtol=0, atol=1e-3, err_msg=name)
        i, j, k = np.rint(expected).astype(int)
        assert seg[k, j, i] == labels[name], name
        # the sub-voxel cube's centre of mass sits nearer the landmark than the nearest voxel does
        centre = np.array(ndimage.center_of_mass(seg == labels[name])[::-1])
        assert np.linalg.norm(centre - expected) <= min(0.29, np.linalg.norm(np.rint(expected) - expected)) + 1e-6


def test_instances_of_a_class_open_in_slicer_as_points_of_its_label_and_convert_back(tmp_path):
    landmarks = {"nasion": {"label": 1, "voxel": [0.0, 0.0, 0.0], "world": [1.0, 2.0, 3.0], "likelihood": 0.9,
                            "present": True}}
    contacts = [{"voxel": [float(k), 0.0, 0.0], "world": [10.0 * k, -5.0, 7.5], "likelihood": 0.8} for k in range(3)]
    write_prediction_formats(case_prediction("case", "case_0000.nii.gz", landmarks, instances={"contact": contacts}),
                             str(tmp_path), ["mrk.json", "fcsv"])
    for ending, storage_class in STORAGE.items():
        node, scene = slicer_read(storage_class, tmp_path / f"case.{ending}")
        labels = [node.GetNthControlPointLabel(n) for n in range(node.GetNumberOfControlPoints())]
        assert labels == ["nasion", "contact", "contact", "contact"], ending
        ras = [node.GetNthControlPointPosition(n) for n in range(1, 4)]
        np.testing.assert_allclose(ras, [ras_of(c["world"]) for c in contacts], atol=1e-6)
        annotation = read_landmark_file(str(tmp_path / f"case.{ending}"), repeatable={"contact"})
        assert list(annotation.points) == ["nasion"]
        np.testing.assert_allclose(annotation.instances["contact"], [c["world"] for c in contacts], atol=1e-6)
