"""2D images (radiographs): a 2D image is a volume of one slice, its points lie at k = 0 / z = 0, and the converter
writes such volumes with the pixel spacing from the file or --spacing."""
import json

import numpy as np
import pytest
import SimpleITK as sitk

from nnlandmark.commands import convert
from nnlandmark.errors import LandmarkError
from nnlandmark.geometry import Geometry, as_volume
from nnlandmark.io.landmark_files import read_landmark_file


def _plane(size=(50, 40), spacing=(0.5, 0.25), origin=(3.0, -4.0), angle=0.0):
    image = sitk.Image(list(size), sitk.sitkUInt8)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection([np.cos(angle), -np.sin(angle), np.sin(angle), np.cos(angle)])
    return image


def test_a_2d_image_is_a_volume_of_one_slice_with_the_same_pixel_positions():
    plane = _plane(angle=0.3)
    volume = as_volume(plane)
    assert volume.GetSize() == (50, 40, 1)
    for pixel in ([0, 0], [12.5, 7.25], [49, 39]):
        x, y = plane.TransformContinuousIndexToPhysicalPoint(pixel)
        np.testing.assert_allclose(Geometry.of_image(volume).index_to_world([*pixel, 0]), [x, y, 0.0], atol=1e-9)
    resized = as_volume(plane, (0.1, 0.2))
    assert resized.GetSpacing() == (0.1, 0.2, 1.0) and volume.GetSpacing() == (0.5, 0.25, 1.0)   # a copy
    with pytest.raises(LandmarkError, match="3D volume of 3 slices"):
        as_volume(sitk.Image([4, 4, 3], sitk.sitkUInt8), (1.0, 1.0))


@pytest.mark.parametrize("content, given, system, point", [
    ("name,i,j\ntip,12.5,7\n", "lps", "voxel", [12.5, 7.0, 0.0]),     # the columns say voxel
    ("name,x,y\ntip,-3,4.5\n", "lps", "LPS", [-3.0, 4.5, 0.0]),
    ("name,x,y\ntip,-3,4.5\n", "ras", "LPS", [3.0, -4.5, 0.0]),       # RAS -> LPS, still on the plane
    ("tip,1,2\n", "voxel", "voxel", [1.0, 2.0, 0.0]),                  # headerless
    ("tip;1,5;2\n", "voxel", "voxel", [1.5, 2.0, 0.0]),                # European Excel
])
def test_points_on_a_2d_image_come_from_two_columns(tmp_path, content, given, system, point):
    (tmp_path / "a.csv").write_text(content)
    annotation = read_landmark_file(str(tmp_path / "a.csv"), given)
    assert annotation.coordinate_system == system and annotation.planar
    np.testing.assert_allclose(annotation.points["tip"], point)


def _radiographs(folder, n=3, colour=False):
    (folder / "images").mkdir(parents=True)
    (folder / "landmarks").mkdir()
    rng = np.random.default_rng(0)
    for case in range(n):
        pixels = rng.integers(20, 200, (40, 60, 3) if colour else (40, 60)).astype(np.uint8)
        sitk.WriteImage(sitk.GetImageFromArray(pixels, isVector=colour), str(folder / "images" / f"r{case}.png"))
        (folder / "landmarks" / f"r{case}.csv").write_text(f"name,i,j\ntip,{10 + case},20.5\nbase,30,5\n")
    return str(folder / "images"), str(folder / "landmarks")


def test_png_radiographs_become_a_dataset_of_one_slice_volumes_at_the_given_spacing(nnunet_dirs, capsys):
    images, landmarks = _radiographs(nnunet_dirs / "src")
    convert.main(["-i", images, "-l", landmarks, "-d", "61", "-n", "Ceph", "--spacing", "0.1", "0.2"])
    raw = nnunet_dirs / "nnUNet_raw" / "Dataset061_Ceph"
    image = sitk.ReadImage(str(raw / "imagesTr" / "r2_0000.nii.gz"))
    assert image.GetSize() == (60, 40, 1) and image.GetSpacing() == pytest.approx((0.1, 0.2, 1.0))
    png = sitk.GetArrayFromImage(sitk.ReadImage(str(nnunet_dirs / "src" / "images" / "r2.png")))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image)[0], png)
    world = json.loads((raw / "all_landmarks_world.json").read_text())
    assert world["r2"]["tip"] == pytest.approx([1.2, 4.1, 0.0])       # pixel (12, 20.5) at 0.1 x 0.2 mm
    label = sitk.GetArrayFromImage(sitk.ReadImage(str(raw / "labelsTr" / "r2.nii.gz")))
    rows, cols = np.nonzero(label[0] == json.loads((raw / "dataset.json").read_text())["labels"]["tip"])
    assert (cols.mean(), rows.mean()) == pytest.approx((12.0, 20.5), abs=0.15)
    assert "WARNING" not in capsys.readouterr().err


def test_png_without_spacing_is_read_at_1_mm_with_a_warning(nnunet_dirs, capsys):
    images, landmarks = _radiographs(nnunet_dirs / "src")
    convert.main(["-i", images, "-l", landmarks, "-d", "62", "-n", "Ceph"])
    assert "read at 1 mm per pixel; give --spacing SX SY" in capsys.readouterr().err
    world = json.loads((nnunet_dirs / "nnUNet_raw" / "Dataset062_Ceph" / "all_landmarks_world.json").read_text())
    assert world["r0"]["base"] == pytest.approx([30.0, 5.0, 0.0])


def test_2d_inputs_that_would_give_wrong_positions_are_refused(nnunet_dirs, fails_with):
    images, landmarks = _radiographs(nnunet_dirs / "colour", colour=True)
    err = fails_with(convert.main, ["-i", images, "-l", landmarks, "-d", "63", "-n", "Ceph"])
    assert err.endswith("r0.png is a 2D image with 3 component(s); nnlandmark needs 2D or 3D scalar images (one file "
                        "per channel) (save colour images as greyscale)")
    images, landmarks = _radiographs(nnunet_dirs / "flat")
    volume = nnunet_dirs / "volume"
    volume.mkdir()
    sitk.WriteImage(sitk.Image([60, 40, 8], sitk.sitkUInt8), str(volume / "r0.nii.gz"))
    manifest = nnunet_dirs / "manifest.csv"
    manifest.write_text(f"case,image,landmarks\nr0,{volume / 'r0.nii.gz'},{landmarks}/r0.csv\n")
    err = fails_with(convert.main, ["--manifest", str(manifest), "-d", "63", "-n", "Ceph"])
    assert err == (f"error: {landmarks}/r0.csv gives two coordinates per point, but {volume / 'r0.nii.gz'} is a 3D "
                   f"volume: give x,y,z (or i,j,k)")
    err = fails_with(convert.main, ["--manifest", str(manifest), "-d", "63", "-n", "Ceph", "--spacing", "1", "1"])
    assert err == (f"error: --spacing sets the pixel spacing of 2D images, but {volume / 'r0.nii.gz'} is a 3D volume "
                   f"of 8 slices")
    manifest.write_text(f"case,image,landmarks\nr0,{volume / 'r0.nii.gz'},{nnunet_dirs}/r0.csv\n"
                        f"r1,{images}/r1.png,{landmarks}/r1.csv\n")
    (nnunet_dirs / "r0.csv").write_text("name,i,j,k\ntip,1,2,3\nbase,4,5,6\n")
    err = fails_with(convert.main, ["--manifest", str(manifest), "-d", "63", "-n", "Ceph"])
    assert err == (f"error: the dataset mixes 2D images ({images}/r1.png) and 3D volumes ({volume / 'r0.nii.gz'}): "
                   f"convert them as two datasets")


def test_radiographs_larger_than_a_cpu_patch_plan_a_cascade_whose_coarse_stage_keeps_every_landmark(nnunet_dirs,
                                                                                                   capsys):
    from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class
    from nnlandmark.commands import plan_and_preprocess
    (nnunet_dirs / "src" / "images").mkdir(parents=True)
    (nnunet_dirs / "src" / "landmarks").mkdir()
    rng = np.random.default_rng(1)
    pixels = {f"r{case}": {"tip": (100.0 + 7 * case, 40.25), "base": (300.5, 250.0 - case)} for case in range(3)}
    for case, points in pixels.items():
        image = rng.integers(20, 200, (300, 320)).astype(np.uint8)        # 320 columns, 300 rows
        sitk.WriteImage(sitk.GetImageFromArray(image), str(nnunet_dirs / "src" / "images" / f"{case}.png"))
        (nnunet_dirs / "src" / "landmarks" / f"{case}.csv").write_text(
            "name,i,j\n" + "".join(f"{name},{i},{j}\n" for name, (i, j) in points.items()))
    convert.main(["-i", str(nnunet_dirs / "src" / "images"), "-l", str(nnunet_dirs / "src" / "landmarks"), "-d", "63",
                  "-n", "Large", "--spacing", "0.5", "0.5"])
    plan_and_preprocess.main(["-d", "63", "-np", "1", "-device", "cpu"])
    out = capsys.readouterr().out
    assert "2D images, a cascade, because a median image of 300x320 pixels is larger than a 256^2 patch" in out
    assert "train nnLandmark_train 63 2d_whole FOLD then nnLandmark_train 63 2d FOLD" in out
    pre = nnunet_dirs / "nnUNet_preprocessed" / "Dataset063_Large"
    plans = json.loads((pre / "nnLandmarkCPUPlans.json").read_text())["configurations"]
    coarse, fine = plans["2d_whole"], plans["2d"]
    assert coarse["spacing"] == pytest.approx([0.625, 0.625]) and coarse["patch_size"] == [256, 256]  # 320 -> 256
    assert fine["spacing"] == pytest.approx([0.5, 0.5]) and fine["patch_size"] == [256, 256]
    assert (coarse["nnlandmark_trainer"], fine["nnlandmark_trainer"]) == (
        "nnLandmarkTrainer_CPU_SpatialSoftmax", "nnLandmarkTrainer_CPU_SpatialSoftmax_Fine")
    labels = json.loads((pre / "dataset.json").read_text())["labels"]
    dataset = infer_dataset_class(str(pre / "nnLandmarkCPUPlans_2d_whole"))(str(pre / "nnLandmarkCPUPlans_2d_whole"))
    for case, points in pixels.items():
        seg = np.asarray(dataset.load_case(case)[1][0])
        assert seg.shape == (1, 240, 256)
        for name, (i, j) in points.items():
            rows, cols = np.nonzero(seg[0] == labels[name])
            expected = (np.array([j, i]) + 0.5) / 1.25 - 0.5       # pixel centres of a 1.25x coarser grid
            assert (rows.mean(), cols.mean()) == pytest.approx(tuple(expected), abs=0.17), (case, name)
