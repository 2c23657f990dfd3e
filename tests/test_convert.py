"""nnLandmark_convert: folders or a manifest of images + landmark files -> a raw dataset nnU-Net accepts."""
import json

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from nnlandmark.commands import convert as convert_command
from nnlandmark.commands import plan_and_preprocess
from nnlandmark.io.landmark_files import write_fcsv, write_mrk_json

NAMES = ("a", "b", "c")


def index_positions(rng):
    while True:  # three landmarks well inside the 16x15x9 image and apart
        index = rng.uniform([2, 2, 2], [13, 12, 6], (3, 3))
        if min(np.abs(index[i] - index[j]).max() for i in range(3) for j in range(i)) > 3.5:
            return index


def make_inputs(oblique_image, root, n=4, ending=".nrrd", seed=0, channels=1):
    """n cases: image files in root/images, annotation files alternating Slicer mrk.json (RAS), fcsv (LPS) and CSV
    (world LPS, undeclared) in root/landmarks. Returns {case: true continuous index (3, 3)}."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "landmarks").mkdir(exist_ok=True)
    truth = {}
    for c in range(n):
        case = f"case{c}"
        image = oblique_image()
        for channel in range(channels):
            pixels = sitk.GetImageFromArray(rng.normal(size=(9, 15, 16)).astype(np.float32))
            pixels.CopyInformation(image)
            suffix = f"_{channel:04d}" if channels > 1 else ""
            sitk.WriteImage(pixels, str(root / "images" / f"{case}{suffix}{ending}"))
        truth[case] = index_positions(rng)
        world = {n: image.TransformContinuousIndexToPhysicalPoint(p.tolist())
                 for n, p in zip(NAMES, truth[case])}
        kind = c % 3
        if kind == 0:
            write_mrk_json(str(root / "landmarks" / f"{case}.mrk.json"), world, "RAS")
        elif kind == 1:
            write_fcsv(str(root / "landmarks" / f"{case}.fcsv"), world)
        else:
            (root / "landmarks" / f"{case}.csv").write_text(
                "name,x,y,z\n" + "".join(f"{n},{p[0]},{p[1]},{p[2]}\n" for n, p in world.items()))
    return truth


def run(argv, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("nnUNet_raw", str(tmp_path / "raw"))
    code = 0
    try:
        convert_command.main(argv)
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def test_converted_dataset_keeps_the_geometry_and_passes_nnunet_checks(tmp_path, capsys, monkeypatch, oblique_image):
    truth = make_inputs(oblique_image, tmp_path, n=4)
    code, out, err = run(["-i", str(tmp_path / "images"), "-l", str(tmp_path / "landmarks"), "-d", "31", "-n",
                          "Conv", "--coordinate-system", "lps", "--test-fraction", "0.25", "--folds", "3"],
                         capsys, tmp_path, monkeypatch)
    assert code == 0, err
    folder = tmp_path / "raw" / "Dataset031_Conv"
    info = json.loads((folder / "dataset.json").read_text())
    assert info["labels"] == {"background": 0, "a": 1, "b": 2, "c": 3} and info["numTraining"] == 3
    assert len(list((folder / "imagesTs").glob("*_0000.nii.gz"))) == 1
    voxel = json.loads((folder / "all_landmarks_voxel.json").read_text())
    world = json.loads((folder / "all_landmarks_world.json").read_text())
    # each table says what it holds, so evaluation can refuse voxel indices as ground truth
    assert voxel.pop("coordinate_system") == "voxel" and world.pop("coordinate_system") == "LPS"
    assert sorted(voxel) == sorted(world) == sorted(truth)
    spacing = json.loads((folder / "spacing.json").read_text())
    splits = json.loads((folder / "splits_final.json").read_text())
    train = sorted(p.name[:-len(".nii.gz")] for p in (folder / "labelsTr").glob("*.nii.gz"))
    assert len(splits) == 3 and sorted(c for s in splits for c in s["val"]) == train
    reference = oblique_image()
    for case, index in truth.items():
        split = "Tr" if (folder / "labelsTr" / f"{case}.nii.gz").exists() else "Ts"
        assert np.allclose([voxel[case][n] for n in NAMES], index, atol=1e-6)
        expected_world = [reference.TransformContinuousIndexToPhysicalPoint(p.tolist()) for p in index]
        assert np.allclose([world[case][n] for n in NAMES], expected_world, atol=1e-6)
        assert np.allclose(spacing[case], (0.8, 1.1, 1.9))
        label = sitk.ReadImage(str(folder / f"labels{split}" / f"{case}.nii.gz"))
        image = sitk.ReadImage(str(folder / f"images{split}" / f"{case}_0000.nii.gz"))
        assert np.allclose(label.GetDirection(), image.GetDirection()) and label.GetOrigin() == image.GetOrigin()
        seg = sitk.GetArrayFromImage(label)
        for value, p in enumerate(index, start=1):
            x, y, z = np.rint(p).astype(int)
            assert seg[z, y, x] == value and ndimage.label(seg == value, np.ones((3, 3, 3)))[1] == 1
            centre = np.array(ndimage.center_of_mass(seg == value)[::-1])
            # the blob's extra face voxels (or, where a neighbour or the border cuts it, its trimming) put its centre
            # of mass nearer to the landmark than the nearest voxel is
            assert np.linalg.norm(centre - p) <= min(0.29, np.linalg.norm(np.rint(p) - p)) + 1e-9
    monkeypatch.setenv("nnUNet_preprocessed", str(tmp_path / "pre"))
    plan_and_preprocess.main(["-d", "31", "--verify_dataset_integrity"])
    assert json.loads((tmp_path / "pre" / "Dataset031_Conv" / "splits_final.json").read_text()) == splits


def test_multichannel_manifest_and_missing_landmarks(tmp_path, capsys, monkeypatch, oblique_image):
    truth = make_inputs(oblique_image, tmp_path, n=2, ending=".nii.gz", channels=2)
    b_world = oblique_image().TransformContinuousIndexToPhysicalPoint([5.0, 6.0, 4.0])
    (tmp_path / "landmarks" / "case1.csv").write_text("name,x,y,z\na,,,\n" + f"b,{b_world[0]},{b_world[1]},"
                                                                             f"{b_world[2]}\n")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("case,image,landmarks\n" + "".join(
        f"subject{c},images/case{c}_0000.nii.gz;images/case{c}_0001.nii.gz,landmarks/{f}\n"
        for c, f in ((0, "case0.mrk.json"), (1, "case1.csv"))))
    code, out, err = run(["--manifest", str(manifest), "-d", "32", "-n", "Man", "--coordinate-system", "lps"],
                         capsys, tmp_path, monkeypatch)
    assert code == 0, err
    folder = tmp_path / "raw" / "Dataset032_Man"
    assert sorted(p.name for p in (folder / "imagesTr").iterdir()) == [
        "subject0_0000.nii.gz", "subject0_0001.nii.gz", "subject1_0000.nii.gz", "subject1_0001.nii.gz"]
    voxel = json.loads((folder / "all_landmarks_voxel.json").read_text())
    assert voxel["subject1"]["a"] is None and voxel["subject1"]["c"] is None
    assert np.allclose(voxel["subject1"]["b"], [5, 6, 4]) and np.allclose(voxel["subject0"]["c"], truth["case0"][2])
    assert "WARNING: landmarks missing" in err and "'a' in 1 case(s) (subject1)" in err
    seg = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "labelsTr" / "subject1.nii.gz")))
    assert set(np.unique(seg)) == {0, 2}


def test_close_landmarks_share_the_cube_and_are_warned_about(tmp_path, capsys, monkeypatch, oblique_image):
    make_inputs(oblique_image, tmp_path, n=1)
    image = oblique_image()
    world = {n: image.TransformContinuousIndexToPhysicalPoint(p) for n, p in
             (("a", [5.0, 5.0, 4.0]), ("b", [6.6, 5.0, 4.0]), ("c", [11.0, 10.0, 4.0]))}
    write_mrk_json(str(tmp_path / "landmarks" / "case0.mrk.json"), world)
    code, out, err = run(["-i", str(tmp_path / "images"), "-l", str(tmp_path / "landmarks"), "-d", "33", "-n", "X"],
                         capsys, tmp_path, monkeypatch)
    assert code == 0, err
    assert "1 landmark pair(s) closer than the 3x3x3 cube (case0: 'a'/'b')" in err
    seg = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "raw" / "Dataset033_X" / "labelsTr" / "case0.nii.gz")))
    # voxel x=6 is 1.0 from a and 0.6 from b: it goes to b; a keeps x=4,5 and is trimmed to the x=5 plane, where
    # its centre of mass is a's position again; b gives up the x=8 voxels that pull it away from 6.6
    assert (seg == 1).sum() == 9 and np.all(seg[3:6, 4:7, 5] == 1)
    assert np.allclose(ndimage.center_of_mass(seg == 1)[::-1], [5, 5, 4])
    b = np.array(ndimage.center_of_mass(seg == 2)[::-1])
    assert np.all(seg[3:6, 4:7, 6:8] == 2) and np.linalg.norm(b - [6.6, 5, 4]) <= 0.05 + 1e-9  # 0.4 untrimmed


def make_one_case(oblique_image, tmp_path, points, system="LPS"):
    make_inputs(oblique_image, tmp_path, n=1)
    (tmp_path / "landmarks" / "case0.mrk.json").unlink()
    image = oblique_image()
    world = {n: image.TransformContinuousIndexToPhysicalPoint(p) for n, p in points.items()}
    write_mrk_json(str(tmp_path / "landmarks" / "case0.mrk.json"), world, system)
    return image


@pytest.mark.parametrize("points,message", [
    ({"a": [5.0, 5.0, 4.0], "b": [20.0, 5.0, 4.0]}, "case0.mrk.json: landmark 'b' at voxel [20.0, 5.0, 4.0] lies "
                                                    "outside image"),
    ({"a": [5.0, 5.0, 4.0], "b": [5.0, 5.0, 4.0]}, "landmark 'b' has no voxel left"),
    ({"background": [5.0, 5.0, 4.0]}, "a landmark may not be called 'background'"),
])
def test_bad_landmarks_fail_before_anything_is_written(tmp_path, capsys, monkeypatch, points, message, oblique_image):
    make_one_case(oblique_image, tmp_path, points)
    code, out, err = run(["-i", str(tmp_path / "images"), "-l", str(tmp_path / "landmarks"), "-d", "34", "-n", "X"],
                         capsys, tmp_path, monkeypatch)
    assert code == 2 and message in err.strip().splitlines()[-1]
    assert not (tmp_path / "raw").exists() or not any((tmp_path / "raw").iterdir())


def test_ras_read_as_lps_is_recognised(tmp_path, capsys, monkeypatch, oblique_image):
    image = oblique_image()
    make_inputs(oblique_image, tmp_path, n=1)
    (tmp_path / "landmarks" / "case0.mrk.json").unlink()
    ras = [np.array(image.TransformContinuousIndexToPhysicalPoint(p)) * [-1, -1, 1]
           for p in ([3.0, 3.0, 3.0], [12.0, 10.0, 5.0])]
    (tmp_path / "landmarks" / "case0.csv").write_text(f"a,{ras[0][0]},{ras[0][1]},{ras[0][2]}\n"
                                                      f"b,{ras[1][0]},{ras[1][1]},{ras[1][2]}\n")
    argv = ["-i", str(tmp_path / "images"), "-l", str(tmp_path / "landmarks"), "-d", "35", "-n", "X"]
    code, out, err = run(argv + ["--coordinate-system", "lps"], capsys, tmp_path, monkeypatch)
    assert code == 2
    assert ("case0.csv: none of its 2 landmarks lies inside image" in err
            and "read as RAS they would all lie inside" in err)
    code, out, err = run(argv + ["--coordinate-system", "ras"], capsys, tmp_path, monkeypatch)
    assert code == 0, err


def test_pairing_and_dataset_errors(tmp_path, capsys, monkeypatch, oblique_image):
    make_inputs(oblique_image, tmp_path, n=3)
    base = ["-i", str(tmp_path / "images"), "-l", str(tmp_path / "landmarks"), "--coordinate-system", "lps"]

    def error(extra):
        code, out, err = run(base + extra, capsys, tmp_path, monkeypatch)
        assert code == 2, err
        return err.strip().splitlines()[-1]

    assert "--test-fraction 1.5 must lie between 0 and 1" in error(["-d", "36", "-n", "X", "--test-fraction", "1.5"])
    (tmp_path / "tests.txt").write_text("case0\ncase9\n")
    assert "test case 'case9' is not among the 3 cases" in error(["-d", "36", "-n", "X", "--test-cases",
                                                                  str(tmp_path / "tests.txt")])
    assert "--folds 5 needs between 2 and 3" in error(["-d", "36", "-n", "X", "--folds", "5"])
    assert run(base + ["-d", "36", "-n", "X"], capsys, tmp_path, monkeypatch)[0] == 0
    assert "Dataset036_X already exists; pass --overwrite" in error(["-d", "36", "-n", "X"])
    assert "dataset ID 36 is already used by" in error(["-d", "36", "-n", "Other"])
    assert run(base + ["-d", "36", "-n", "X", "--overwrite"], capsys, tmp_path, monkeypatch)[0] == 0
    (tmp_path / "landmarks" / "case1.json").write_text('{"a": [1, 2, 3]}')
    assert "duplicate case ID 'case1'" in error(["-d", "37", "-n", "X"])
    (tmp_path / "landmarks" / "case1.json").rename(tmp_path / "landmarks" / "case7.json")
    assert "1 landmark file(s) without a partner of the same case name, e.g." in error(["-d", "37", "-n", "X"])
    (tmp_path / "landmarks" / "case7.json").unlink()
    (tmp_path / "images" / "case0.nrrd").write_text("not an image")
    assert "cannot read image" in error(["-d", "37", "-n", "X"]) and "case0.nrrd" in error(["-d", "37", "-n", "X"])
    nan = sitk.GetImageFromArray(np.full((9, 15, 16), np.nan, np.float32))
    nan.CopyInformation(oblique_image())
    sitk.WriteImage(nan, str(tmp_path / "images" / "case0.nrrd"))
    assert "case0.nrrd contains NaN or infinite values" in error(["-d", "37", "-n", "X"])
    assert not (tmp_path / "raw" / "Dataset037_X").exists() and not (tmp_path / "raw" / "Dataset037_X.partial").exists()
    assert "images folder" in error(["-i", str(tmp_path / "nowhere"), "-d", "37", "-n", "X"])
    monkeypatch.delenv("nnUNet_raw")
    with pytest.raises(SystemExit):
        convert_command.main(base + ["-d", "37", "-n", "X"])
    assert "environment variable nnUNet_raw is not set" in capsys.readouterr().err


def test_channels_on_different_grids_are_refused(tmp_path, capsys, monkeypatch, oblique_image):
    make_inputs(oblique_image, tmp_path, n=1, ending=".nii.gz", channels=2)
    second = tmp_path / "images" / "case0_0001.nii.gz"
    image = sitk.ReadImage(str(second))
    image.SetSpacing((1.0, 1.0, 1.0))
    sitk.WriteImage(image, str(second))
    code, out, err = run(["-i", str(tmp_path / "images"), "-l", str(tmp_path / "landmarks"), "-d", "38", "-n", "X"],
                         capsys, tmp_path, monkeypatch)
    assert code == 2 and f"channel {second} has another size or geometry than" in err
