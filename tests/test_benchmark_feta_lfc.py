"""FeTA 2.4 and LFC converters on small fabricated trees that mimic the distributed layouts and file formats."""
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy.spatial.transform import Rotation

from nnlandmark.dataset_conversion.benchmarks import feta, lfc, split_file
from nnlandmark.dataset_conversion.dataset_writer import ConversionWarning
from nnlandmark.errors import LandmarkError

SIZE = 20


def make_image(rng, direction):
    """20^3 image, non-trivial origin, anisotropic spacing, the given direction matrix."""
    image = sitk.GetImageFromArray(rng.normal(100, 20, (SIZE, SIZE, SIZE)).astype(np.float32))
    image.SetSpacing(tuple(rng.uniform(0.6, 1.2, 3)))
    image.SetOrigin(tuple(rng.uniform(-60, 60, 3)))
    image.SetDirection(np.asarray(direction, float).ravel().tolist())
    return image


def world(image, index):
    return np.array(image.TransformContinuousIndexToPhysicalPoint([float(v) for v in index]))


def check_common(folder, module, n_cases, test_cases):
    folder = Path(folder)
    dataset = json.loads((folder / "dataset.json").read_text())
    assert list(dataset["labels"].items()) == [("background", 0)] + [(n, i + 1) for i, n in enumerate(module.LANDMARKS)]
    assert dataset["numTraining"] == n_cases - len(test_cases)
    pairs = dataset["biometry_pairs"]
    assert pairs == [list(p) for p in module.BIOMETRY_PAIRS]
    assert all(a in dataset["labels"] and b in dataset["labels"] and a != b for a, b in pairs)
    assert sorted(name for pair in pairs for name in pair) == sorted(module.LANDMARKS)  # every landmark in one pair
    assert set(dataset["biometry_names"]) == {f"{a}:{b}" for a, b in pairs}
    for case in test_cases:
        assert (folder / "imagesTs" / f"{case}_0000.nii.gz").is_file()
        assert (folder / "labelsTs" / f"{case}.nii.gz").is_file()
        assert not (folder / "imagesTr" / f"{case}_0000.nii.gz").exists()
    assert len(list((folder / "imagesTr").glob("*.nii.gz"))) == n_cases - len(test_cases)
    return dataset, json.loads((folder / "all_landmarks_world.json").read_text())


# ---------------------------------------------------------------- FeTA 2.4

# The two voxels (ITK index) of each measurement label, written so that the voxel scan order of the label map (numpy
# argwhere order: z, then y, then x) is the opposite of the anatomical order '_1' the converter must produce.
FETA_VOXELS = {1: [(10, 4, 5), (10, 14, 6)],     # LCC: differs along y
               2: [(6, 9, 4), (6, 10, 15)],      # HV: along z
               3: [(4, 5, 10), (15, 6, 10)],     # bBIP: along x
               4: [(3, 12, 12), (16, 12, 12)],   # sBIP
               5: [(5, 15, 8), (14, 15, 9)]}     # TCD
# LPS axis and sign of each label: '_1' has the larger sign * coordinate (anterior, superior, right)
FETA_ORDER = {1: (1, -1.0), 2: (2, 1.0), 3: (0, -1.0), 4: (0, -1.0), 5: (0, -1.0)}
# A RAS-stored NIfTI reads in ITK as direction diag(-1, -1, 1): voxel x grows to the right, y to the front.
FETA_DIRECTION = np.diag([-1.0, -1.0, 1.0]) @ Rotation.from_euler("XYZ", (0.05, -0.04, 0.08)).as_matrix()


def write_itksnap_transform(path, matrix, translation, centre):
    """The ITK transform file ITK-SNAP saves (MatrixOffsetTransformBase: x -> M (x - c) + c + t)."""
    numbers = " ".join(repr(float(v)) for v in list(np.ravel(matrix)) + list(translation))
    Path(path).write_text("#Insight Transform File V1.0\n#Transform 0\n"
                          "Transform: MatrixOffsetTransformBase_double_3_3\n"
                          f"Parameters: {numbers}\nFixedParameters: {' '.join(repr(float(v)) for v in centre)}\n")


def make_feta_case(root, rng, subject, rec, labels=FETA_VOXELS):
    """sub-XXX/anat/..._T2w.nii.gz + derivatives/biometry/sub-XXX/anat/..._meas.nii.gz and ..._trf.txt; returns the
    expected landmarks (LPS mm in the original image) and the re-aligned-space pair distances."""
    stem = f"{subject}_rec-{rec}"
    anat, bio = root / subject / "anat", root / "derivatives" / "biometry" / subject / "anat"
    anat.mkdir(parents=True)
    bio.mkdir(parents=True)
    image = make_image(rng, FETA_DIRECTION)
    sitk.WriteImage(image, str(anat / f"{stem}_T2w.nii.gz"))
    sitk.WriteImage(sitk.Cast(image > 1e9, sitk.sitkUInt8), str(anat / f"{stem}_dseg.nii.gz"))
    meas = np.zeros((SIZE, SIZE, SIZE), np.uint8)
    for label, voxels in labels.items():
        for x, y, z in voxels:
            meas[z, y, x] = label
    meas_image = sitk.GetImageFromArray(meas)
    meas_image.CopyInformation(image)
    sitk.WriteImage(meas_image, str(bio / f"{stem}_meas.nii.gz"))
    matrix = Rotation.from_euler("XYZ", rng.uniform(-0.03, 0.03, 3)).as_matrix()
    translation = rng.uniform(-0.4, 0.4, 3)
    centre = world(image, (9.5, 9.5, 9.5))
    write_itksnap_transform(bio / f"{stem}_trf.txt", matrix, translation, centre)
    expected, lengths = {}, {}
    for label, voxels in labels.items():
        if len(voxels) != 2 or label not in feta.MEASUREMENTS:
            continue
        assert list(voxels) == sorted(voxels, key=lambda v: v[::-1])  # listed in the label map's scan order
        abbr = feta.MEASUREMENTS[label][0]
        axis, sign = FETA_ORDER[label]
        a, b = (world(image, v) for v in voxels)
        assert sign * a[axis] < sign * b[axis]  # the scan order is the wrong one: the converter must swap
        for name, point in ((f"{abbr}_1", b), (f"{abbr}_2", a)):
            expected[name] = matrix @ (point - centre) + centre + translation
        lengths[abbr] = np.linalg.norm(a - b)
    return expected, lengths


@pytest.fixture()
def feta_tree(tmp_path):
    rng = np.random.default_rng(804)
    root = tmp_path / "download" / "feta_2.4"
    split = json.loads(Path(split_file("feta")).read_text())
    test_case = split["test"][0]
    train = [c for c in split["cases"] if c not in split["test"]][:2]
    truth = {}
    truth[test_case] = make_feta_case(root, rng, test_case, "mial")
    truth[train[0]] = make_feta_case(root, rng, train[0], "irtk")
    incomplete = {k: v for k, v in FETA_VOXELS.items() if k != 2}           # HV not measured
    incomplete[5] = FETA_VOXELS[5] + [(9, 3, 17)]                            # TCD label with 3 separate voxels
    truth[train[1]] = make_feta_case(root, rng, train[1], "mial", incomplete)
    (root / "derivatives" / "biometry" / "biometry.tsv").write_text("participant_id\tLCC\tHV\tbBIP\tsBIP\tTCD\n")
    return root, truth, test_case, train


def test_feta_conversion(feta_tree, tmp_path):
    root, truth, test_case, train = feta_tree
    with pytest.warns(ConversionWarning) as caught:
        folder = feta.convert(str(root.parent), str(tmp_path / "raw"))  # the folder holding feta_2.4 works too
    messages = " | ".join(str(w.message) for w in caught)
    assert f"{train[1]} TCD (3 voxel(s) in 3 connected part(s)" in messages
    assert "not rigid" not in messages and "swapped" not in messages
    assert Path(folder).name == "Dataset804_FeTA_2_4"
    dataset, world_json = check_common(folder, feta, 3, [test_case])
    assert len(dataset["labels"]) == 11 and dataset["channel_names"] == {"0": "T2w"}
    assert dataset["biometry_pairs"][0] == ["LCC_1", "LCC_2"]
    for case, (expected, lengths) in truth.items():
        for name in feta.LANDMARKS:
            if name in expected:
                np.testing.assert_allclose(world_json[case][name], expected[name], atol=1e-4)
            else:
                assert world_json[case][name] is None
        for abbr, length in lengths.items():  # rigid re-alignment: the biometry survives the mapping
            d = np.linalg.norm(np.subtract(world_json[case][f"{abbr}_1"], world_json[case][f"{abbr}_2"]))
            assert d == pytest.approx(length, abs=1e-4)
    assert [n for n in feta.LANDMARKS if world_json[train[1]][n] is None] == ["HV_1", "HV_2", "TCD_1", "TCD_2"]
    # the images are the original T2w volumes, copied unchanged
    original = sitk.ReadImage(str(root / test_case / "anat" / f"{test_case}_rec-mial_T2w.nii.gz"))
    copied = sitk.ReadImage(str(Path(folder) / "imagesTs" / f"{test_case}_0000.nii.gz"))
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(copied), sitk.GetArrayViewFromImage(original))
    np.testing.assert_allclose(copied.GetDirection(), original.GetDirection(), atol=1e-6)


def test_feta_nonrigid_transform_and_blob_endpoints_are_handled(tmp_path):
    rng = np.random.default_rng(5)
    root = tmp_path / "feta_2.4"
    labels = dict(FETA_VOXELS)
    labels[4] = FETA_VOXELS[4] + [(3, 13, 12)]  # one sBIP endpoint drawn as two touching voxels: centre of mass
    make_feta_case(root, rng, "sub-005", "mial", labels)
    bio = root / "derivatives" / "biometry" / "sub-005" / "anat"
    image = sitk.ReadImage(str(root / "sub-005" / "anat" / "sub-005_rec-mial_T2w.nii.gz"))
    centre = world(image, (9.5, 9.5, 9.5))
    write_itksnap_transform(bio / "sub-005_rec-mial_trf.txt", np.diag([1.05, 1.0, 1.0]), np.zeros(3), centre)
    with pytest.warns(ConversionWarning) as caught:
        cases, test = feta.collect_cases(str(root))
    assert any("transform of 1 case(s) is not rigid" in str(w.message) for w in caught)
    assert test == [] and len(cases) == 1 and not cases[0].missing
    blob = (world(image, (3, 12, 12)) + world(image, (3, 13, 12))) / 2  # right end (smaller LPS x after the flip)
    mapped = np.diag([1.05, 1.0, 1.0]) @ (blob - centre) + centre
    np.testing.assert_allclose(cases[0].landmarks["sBIP_2" if blob[0] > world(image, (16, 12, 12))[0] else "sBIP_1"],
                               mapped, atol=1e-4)


@pytest.mark.parametrize("damage, message", [
    ("no_biometry", "no derivatives/biometry folder in"),
    ("no_image", "_T2w.nii.gz does not exist"),
    ("no_transform", "_trf.txt does not exist"),
    ("bad_label", "label 7 is not one of the FeTA biometry labels"),
])
def test_feta_wrong_layout(tmp_path, damage, message):
    rng = np.random.default_rng(1)
    root = tmp_path / "feta_2.4"
    labels = {**FETA_VOXELS, **({7: [(2, 2, 2), (17, 17, 17)]} if damage == "bad_label" else {})}
    make_feta_case(root, rng, "sub-001", "mial", labels)
    bio = root / "derivatives" / "biometry" / "sub-001" / "anat"
    if damage == "no_biometry":
        shutil.rmtree(root / "derivatives")
    elif damage == "no_image":
        (root / "sub-001" / "anat" / "sub-001_rec-mial_T2w.nii.gz").unlink()
    elif damage == "no_transform":
        (bio / "sub-001_rec-mial_trf.txt").unlink()
    with pytest.raises(LandmarkError, match=message) as error:
        feta.convert(str(root), str(tmp_path / "raw"))
    assert "\n" not in str(error.value)
    assert not (tmp_path / "raw").exists()


# ---------------------------------------------------------------- LFC


def markup_line(points, system="LPS", undefined=()):
    """A 3D Slicer Line markup (.mrk.json) as Slicer 5 saves it."""
    control = []
    for n, p in enumerate(points):
        cp = {"id": str(n + 1), "label": f"L-{n + 1}", "description": "", "associatedNodeID": "",
              "position": [float(v) for v in p], "orientation": [-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0],
              "selected": True, "locked": False, "visibility": True, "positionStatus": "defined"}
        if n in undefined:
            cp["position"], cp["positionStatus"] = "", "undefined"
        control.append(cp)
    length = float(np.linalg.norm(np.subtract(points[0], points[1])))
    return {"@schema": "https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/Resources/"
                       "Schema/markups-schema-v1.0.3.json#",
            "markups": [{"type": "Line", "coordinateSystem": system, "coordinateUnits": "mm", "locked": False,
                         "fixedNumberOfControlPoints": False, "labelFormat": "%N-%d", "lastUsedControlPointNumber": 2,
                         "controlPoints": control,
                         "measurements": [{"name": "length", "enabled": True, "value": length, "units": "mm",
                                           "printFormat": "%-#4.4g%s"}],
                         "display": {"visibility": True, "opacity": 1.0, "color": [0.4, 1.0, 1.0]}}]}


def make_lfc_case(root, rng, split, number, file_name="{k}.mrk.json", ras_files=(), skip=(), undefined=None):
    """{split}/{number}.nii.gz + {split}_label/{number}/1..6.mrk.json; returns the expected landmarks (LPS mm)."""
    (root / split).mkdir(parents=True, exist_ok=True)
    folder = root / f"{split}_label" / str(number)
    folder.mkdir(parents=True)
    image = make_image(rng, Rotation.from_euler("XYZ", rng.uniform(-0.4, 0.4, 3)).as_matrix())
    sitk.WriteImage(image, str(root / split / f"{number}.nii.gz"))
    nodes = np.array(np.meshgrid((2, 7, 12, 17), (2, 7, 12, 17), (2, 7, 12, 17), indexing="ij")).reshape(3, -1).T
    indices = nodes[rng.choice(len(nodes), 12, replace=False)] + rng.uniform(-0.4, 0.4, (12, 3))
    expected = {}
    for k, (prefix, *_) in lfc.MEASUREMENTS.items():
        lps = [world(image, indices[2 * (k - 1) + i]) for i in range(2)]
        if k in skip:
            continue
        system = "RAS" if k in ras_files else "LPS"
        stored = [p * np.array([-1, -1, 1]) if system == "RAS" else p for p in lps]
        hidden = (undefined[1],) if undefined and undefined[0] == k else ()
        (folder / file_name.format(k=k)).write_text(json.dumps(markup_line(stored, system, hidden), indent=2))
        for i, p in enumerate(lps):
            if i not in hidden:
                expected[f"{prefix}_{i + 1}"] = p
    return expected


@pytest.fixture()
def lfc_tree(tmp_path):
    rng = np.random.default_rng(805)
    root = tmp_path / "dataset"
    truth = {"train_1": make_lfc_case(root, rng, "train", 1, ras_files=(2, 5)),
             "train_2": make_lfc_case(root, rng, "train", 2, file_name="L_{k}.mrk.json", skip=(4,),
                                      undefined=(6, 1)),
             "valid_1": make_lfc_case(root, rng, "valid", 1)}
    for atlas in ("atlas/atlas-reconstruct", "feta21/feta21"):  # the authors' other sets, not part of LFC
        (root / atlas).mkdir(parents=True)
    return root, truth


def test_lfc_conversion(lfc_tree, tmp_path):
    root, truth = lfc_tree
    with pytest.warns(ConversionWarning) as caught:
        folder = lfc.convert(str(root), str(tmp_path / "raw"))
    messages = " | ".join(str(w.message) for w in caught)
    assert "train_2 OFD (no file 4.mrk.json)" in messages and "train_2 ADV_2 (undefined in L_6.mrk.json)" in messages
    assert Path(folder).name == "Dataset805_LFC"
    dataset, world_json = check_common(folder, lfc, 3, ["valid_1"])
    assert len(dataset["labels"]) == 13
    assert lfc.LANDMARKS[:4] == ("bBIP_1", "bBIP_2", "sBIP_1", "sBIP_2")
    assert dataset["biometry_names"]["bBIP_1:bBIP_2"].endswith("(CBD)")
    for case, expected in truth.items():
        for name in lfc.LANDMARKS:
            if name in expected:
                np.testing.assert_allclose(world_json[case][name], expected[name], atol=1e-4)
            else:
                assert world_json[case][name] is None
    assert [n for n in lfc.LANDMARKS if world_json["train_2"][n] is None] == ["OFD_1", "OFD_2", "ADV_2"]


def test_lfc_files_numbered_otherwise_are_taken_in_order(tmp_path):
    rng = np.random.default_rng(3)
    root = tmp_path / "dataset"
    expected = make_lfc_case(root, rng, "train", 7, file_name="m_{k}0.mrk.json")  # numbered 10..60
    with pytest.warns(ConversionWarning, match="no valid/"):
        cases, test = lfc.collect_cases(str(tmp_path))  # the folder holding dataset/ works too
    assert test == [] and [c.case for c in cases] == ["train_7"]
    for name, point in expected.items():
        np.testing.assert_allclose(cases[0].landmarks[name], point, atol=1e-9)


@pytest.mark.parametrize("damage, message", [
    ("no_train", "no train/ folder in"),
    ("no_image", "its image .*valid.*2.nii.gz does not exist"),
    ("three_points", "3 control points, a measurement line has 2"),
    ("bad_numbers", r"markup files numbered \[1, 2, 3, 4, 9\]"),
])
def test_lfc_wrong_layout(tmp_path, damage, message):
    rng = np.random.default_rng(2)
    root = tmp_path / "dataset"
    make_lfc_case(root, rng, "train", 1)
    make_lfc_case(root, rng, "valid", 2)
    folder = root / "valid_label" / "2"
    if damage == "no_train":
        (root / "train").rename(root / "training")
    elif damage == "no_image":
        (root / "valid" / "2.nii.gz").unlink()
    elif damage == "three_points":
        doc = json.loads((folder / "3.mrk.json").read_text())
        doc["markups"][0]["controlPoints"].append(doc["markups"][0]["controlPoints"][0])
        (folder / "3.mrk.json").write_text(json.dumps(doc))
    elif damage == "bad_numbers":
        (folder / "6.mrk.json").unlink()
        (folder / "5.mrk.json").rename(folder / "9.mrk.json")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConversionWarning)
        with pytest.raises(LandmarkError, match=message) as error:
            lfc.convert(str(root), str(tmp_path / "raw"))
    assert "\n" not in str(error.value)
    assert not (tmp_path / "raw").exists()
