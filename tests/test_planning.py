"""Planning keeps nnU-Net's behaviour and warns when resampling erases a landmark cube."""
import json
import os

import numpy as np
import pytest
import SimpleITK as sitk

from nnlandmark.labelmaps import landmarks_to_labelmap
from nnlandmark.planning import CPU_PLANS, derive_cpu_plans, plan_and_preprocess


def _write_case(folder, case, size, spacing, centre):
    image = sitk.GetImageFromArray(np.random.default_rng(0).normal(0, 1, (size,) * 3).astype(np.float32))
    image.SetSpacing((spacing,) * 3)
    sitk.WriteImage(image, str(folder / "imagesTr" / f"{case}_0000.nii.gz"))
    sitk.WriteImage(landmarks_to_labelmap(image, {"tip": np.array(centre)}, {"tip": 1}),
                    str(folder / "labelsTr" / f"{case}.nii.gz"))


def test_warns_when_resampling_erases_a_cube_and_cpu_plans_share_the_data(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("nnUNet_raw", str(tmp_path / "raw"))
    monkeypatch.setenv("nnUNet_preprocessed", str(tmp_path / "pre"))
    folder = tmp_path / "raw" / "Dataset993_Cubes"
    (folder / "imagesTr").mkdir(parents=True)
    (folder / "labelsTr").mkdir()
    for i in range(3):
        _write_case(folder, f"coarse_{i}", 24, 1.0, (12, 12, 12))
    _write_case(folder, "fine_0", 96, 0.25, (48, 48, 48))  # 0.75 mm cube, resampled to the median 1 mm
    json.dump({"channel_names": {"0": "MR"}, "labels": {"background": 0, "tip": 1}, "numTraining": 4,
               "file_ending": ".nii.gz"}, open(folder / "dataset.json", "w"))
    plans = plan_and_preprocess(993)
    out = capsys.readouterr().out
    assert "erased 1 landmark cube(s) (fine_0/tip)" in out and "coarse_" not in out.split("WARNING")[1]

    derive_cpu_plans(993, plans)
    cpu = json.loads((tmp_path / "pre" / "Dataset993_Cubes" / f"{CPU_PLANS}.json").read_text())
    original = json.loads((tmp_path / "pre" / "Dataset993_Cubes" / f"{plans}.json").read_text())
    config, source = cpu["configurations"]["3d_fullres"], original["configurations"]["3d_fullres"]
    assert config["patch_size"] == [32, 32, 32] and config["batch_size"] == 2
    assert config["architecture"]["arch_kwargs"]["features_per_stage"] == [16, 32, 64, 128]
    assert config["data_identifier"] == source["data_identifier"] and config["spacing"] == source["spacing"]


@pytest.mark.slow
def test_whole_volume_configuration_is_coarser_trains_and_predicts(nnunet_dirs, monkeypatch):
    from batchgenerators.utilities.file_and_folder_operations import load_pickle
    from nnlandmark.dataset_conversion.synthetic import make_synthetic_dataset
    from nnlandmark.inference.predictor import LandmarkPredictor
    from nnlandmark.planning import WHOLE_VOLUME, add_coarse_configuration
    from nnlandmark.trainers.run import train

    raw = make_synthetic_dataset(str(nnunet_dirs / "nnUNet_raw"), 995, "Whole", n_train=5, n_test=1, size=32)
    monkeypatch.setenv("nnUNet_n_proc_DA", "0")   # augmentation in the training process; nnU-Net's planner needs >= 1
    derive_cpu_plans(995, plan_and_preprocess(995))
    assert os.environ["nnUNet_n_proc_DA"] == "0"
    assert add_coarse_configuration(995, max_voxels=16 ** 3) == WHOLE_VOLUME  # 32^3 -> 16^3: factor 2
    pre = nnunet_dirs / "nnUNet_preprocessed" / "Dataset995_Whole"
    config = json.loads((pre / f"{CPU_PLANS}.json").read_text())["configurations"][WHOLE_VOLUME]
    assert config["spacing"] == [2.0, 2.0, 2.0] and config["patch_size"] == [16, 16, 16]
    properties = load_pickle(pre / f"{CPU_PLANS}_{WHOLE_VOLUME}" / "sphere_000.pkl")
    assert properties["shape_after_cropping_and_before_resampling"] == (32, 32, 32)
    trainer = train(995, WHOLE_VOLUME, 0, "nnLandmarkTrainer_tiny", CPU_PLANS, device="cpu")
    predictor = LandmarkPredictor.from_model_folder(trainer.output_folder[:-len("/fold_0")], use_mirroring=False)
    landmarks = predictor.predict(sitk.ReadImage(f"{raw}/imagesTs/sphere_005_0000.nii.gz"))["landmarks"]
    voxels = np.array([entry["voxel"] for entry in landmarks.values()])
    assert voxels.shape == (3, 3) and np.all((voxels > -0.5) & (voxels < 31.5))  # mapped back to the 32^3 image


def test_a_four_times_coarser_stage_keeps_every_cube_at_its_landmark(nnunet_dirs):
    """nnU-Net's label resampling loses most 3-voxel cubes at 4x coarser; the coarse stage repaints them where the
    raw landmarks map to."""
    from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class
    from nnlandmark.dataset_conversion.synthetic import make_synthetic_dataset
    from nnlandmark.geometry import Geometry, world_to_preprocessed
    from nnlandmark.planning import WHOLE_VOLUME, add_coarse_configuration

    raw = make_synthetic_dataset(str(nnunet_dirs / "nnUNet_raw"), 996, "Coarse", n_train=5, n_test=0, size=64)
    derive_cpu_plans(996, plan_and_preprocess(996))
    add_coarse_configuration(996, max_voxels=16 ** 3)
    pre = nnunet_dirs / "nnUNet_preprocessed" / "Dataset996_Coarse"
    plans = json.loads((pre / f"{CPU_PLANS}.json").read_text())
    np.testing.assert_allclose(plans["configurations"][WHOLE_VOLUME]["spacing"], [4, 4, 4])
    labels = {n: v for n, v in json.loads((pre / "dataset.json").read_text())["labels"].items() if v}
    world = json.loads((nnunet_dirs / "nnUNet_raw" / "Dataset996_Coarse" / "all_landmarks_world.json").read_text())
    folder = str(pre / f"{CPU_PLANS}_{WHOLE_VOLUME}")
    dataset = infer_dataset_class(folder)(folder)
    for case in dataset.identifiers:
        _, seg, _, properties = dataset.load_case(case)
        seg = np.asarray(seg[0])
        assert seg.shape == (16, 16, 16)
        geometry = Geometry.of_image(sitk.ReadImage(f"{raw}/imagesTr/{case}_0000.nii.gz"))
        for name, value in labels.items():
            expected = world_to_preprocessed(np.array(world[case][name]), geometry, seg.shape, properties,
                                             plans["transpose_forward"])
            voxels = np.argwhere(seg == value)
            assert len(voxels) >= 20, (case, name)
            # the sub-voxel encoding itself is exact to 0.17 voxel per axis (0.04 on average)
            np.testing.assert_allclose(voxels.mean(0), expected, atol=0.17, err_msg=f"{case} {name}")
