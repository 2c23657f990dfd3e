"""Bad input gives one actionable line on stderr and exit code 2, never a traceback."""
import json

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from nnlandmark.commands import demo, plan_and_preprocess, predict, train
from nnlandmark.labelmaps import landmarks_to_labelmap
from nnlandmark.errors import LandmarkError


def test_missing_environment_variable_is_named(monkeypatch, fails_with):
    monkeypatch.delenv("nnUNet_preprocessed", raising=False)
    monkeypatch.setenv("nnUNet_results", "/nonexistent")
    err = fails_with(train.main, ["5", "3d_fullres", "0", "-device", "cpu"])
    assert "nnUNet_preprocessed is not set" in err


def test_unknown_dataset_is_named(monkeypatch, tmp_path, fails_with):
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.setenv(name, str(tmp_path))
    err = fails_with(predict.main, ["-i", str(tmp_path), "-o", str(tmp_path / "o"), "-d", "123"])
    assert "dataset 123 not found" in err


def _raw_dataset(root, seg, ending=".nii.gz"):
    folder = root / "Dataset042_Bad"
    (folder / "labelsTr").mkdir(parents=True)
    (folder / "imagesTr").mkdir()
    json.dump({"channel_names": {"0": "x"}, "labels": {"background": 0, "nasion": 1, "sella": 2},
               "numTraining": 1, "file_ending": ending}, open(folder / "dataset.json", "w"))
    sitk.WriteImage(sitk.GetImageFromArray(seg), str(folder / "labelsTr" / f"case_a{ending}"))
    sitk.WriteImage(sitk.GetImageFromArray(seg.astype(np.float32)), str(folder / "imagesTr" / f"case_a_0000{ending}"))


@pytest.mark.parametrize("paint, message", [
    (lambda s: (s.__setitem__((slice(1, 4),) * 3, 2), s.__setitem__((slice(10, 13),) * 3, 2)),
     "landmark 'sella' (label 2) has 2 separate blobs"),
    (lambda s: s.__setitem__((slice(1, 4),) * 3, 7), "label value 7 is not in dataset.json"),
])
def test_plan_rejects_label_maps_that_are_not_one_cube_per_landmark(monkeypatch, tmp_path, paint, message, fails_with):
    seg = np.zeros((16, 16, 16), np.uint8)
    paint(seg)
    _raw_dataset(tmp_path, seg)
    monkeypatch.setenv("nnUNet_raw", str(tmp_path))
    monkeypatch.setenv("nnUNet_preprocessed", str(tmp_path / "pre"))
    err = fails_with(plan_and_preprocess.main, ["-d", "42"])
    assert message in err and "case_a.nii.gz" in err


def test_train_names_missing_plans_and_a_missing_gpu(monkeypatch, tmp_path, fails_with):
    seg = np.zeros((16, 16, 16), np.uint8)
    _raw_dataset(tmp_path, seg)
    for variable in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.setenv(variable, str(tmp_path))
    err = fails_with(train.main, ["42", "3d_fullres", "0", "-device", "cpu"])
    assert f"{tmp_path / 'Dataset042_Bad' / 'nnUNetPlans.json'} not found: run nnLandmark_plan_and_preprocess" in err
    if not torch.cuda.is_available():  # the message a user without a GPU gets
        err = fails_with(train.main, ["42", "3d_fullres", "0", "-device", "cuda"])
        assert "-device cuda requested but no CUDA GPU is available; use -device cpu" in err


def _shift_label_origin(folder):
    label = sitk.ReadImage(str(folder / "labelsTr" / "case_a.nii.gz"))
    label.SetOrigin((0.0, 0.0, 2.5))
    sitk.WriteImage(label, str(folder / "labelsTr" / "case_a.nii.gz"))


def _nan_image(folder):  # NIfTI cannot carry NaN through SimpleITK (read as 0); MetaImage can
    image = sitk.ReadImage(str(folder / "imagesTr" / "case_a_0000.mha"))
    pixels = sitk.GetArrayFromImage(image)
    pixels[0, 0, 0] = np.nan
    sitk.WriteImage(sitk.GetImageFromArray(pixels), str(folder / "imagesTr" / "case_a_0000.mha"))


def _claim_two_cases(folder):
    dataset_json = json.load(open(folder / "dataset.json"))
    json.dump({**dataset_json, "numTraining": 2}, open(folder / "dataset.json", "w"))


@pytest.mark.parametrize("spoil, ending, argv, message", [
    (_shift_label_origin, ".nii.gz", [], "case_a.nii.gz and {folder}/imagesTr/case_a_0000.nii.gz differ in origin "
                                         "([0.0, 0.0, 2.5] vs [0.0, 0.0, 0.0])"),
    (_nan_image, ".mha", ["--verify_dataset_integrity"], "image {folder}/imagesTr/case_a_0000.mha contains NaN"),
    (_claim_two_cases, ".nii.gz", ["--verify_dataset_integrity"], "nnU-Net's dataset integrity check failed for "
     "Dataset042_Bad: Did not find the expected number of training cases (2). Found 1 instead."),
])
def test_plan_rejects_misaligned_labels_and_nan_images(monkeypatch, tmp_path, spoil, ending, argv, message,
                                                       fails_with):
    seg = np.zeros((16, 16, 16), np.uint8)
    seg[1:4, 1:4, 1:4] = 1
    _raw_dataset(tmp_path, seg, ending)
    spoil(tmp_path / "Dataset042_Bad")
    monkeypatch.setenv("nnUNet_raw", str(tmp_path))
    monkeypatch.setenv("nnUNet_preprocessed", str(tmp_path / "pre"))
    err = fails_with(plan_and_preprocess.main, ["-d", "42"] + argv)
    assert message.format(folder=tmp_path / "Dataset042_Bad") in err


def test_cube_painting_refuses_shared_voxels_and_points_outside():
    reference = sitk.Image(10, 10, 10, sitk.sitkUInt8)
    labels = {"a": 1, "b": 2}
    with pytest.raises(LandmarkError, match="landmark 'b' has no voxel left"):
        landmarks_to_labelmap(reference, {"a": np.array([4, 4, 4]), "b": np.array([4.0, 4.0, 4])}, labels)
    with pytest.raises(LandmarkError, match="landmark 'a' at voxel \\[10.0, 2.0, 2.0\\] lies outside"):
        landmarks_to_labelmap(reference, {"a": np.array([10.0, 2, 2])}, labels)
    seg = sitk.GetArrayFromImage(landmarks_to_labelmap(reference, {"a": np.array([2.4, 7.6, 0.2])}, labels,
                                                       subvoxel=False))
    assert seg.sum() == 18 and seg[0, 8, 2] == 1 and seg[1, 9, 3] == 1  # cube cut at the z=0 border: 2*3*3 voxels


def test_demo_never_deletes_a_folder_it_did_not_make(tmp_path, fails_with):
    (tmp_path / "precious.txt").write_text("data")
    err = fails_with(demo.main, ["--workdir", str(tmp_path)])
    assert "was not made by nnLandmark_demo" in err and (tmp_path / "precious.txt").exists()
