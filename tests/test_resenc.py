"""Architectures through the plans: the ResEnc presets train with -p nnUNetResEncUNetMPlans, and a plans file that
names another network class trains and predicts as well."""
import json

import pytest
import torch

from nnlandmark.dataset_conversion.synthetic import make_synthetic_dataset
from nnlandmark.planning import plan_and_preprocess
from nnlandmark.trainers.run import train


@pytest.mark.slow
def test_resenc_m_plans_train_and_validate(nnunet_dirs, monkeypatch):
    make_synthetic_dataset(str(nnunet_dirs / "nnUNet_raw"), 992, "ResEnc", n_train=5, n_test=0, size=32)
    plans = plan_and_preprocess(992, ("3d_fullres",), planner="nnUNetPlannerResEncM")
    assert plans == "nnUNetResEncUNetMPlans"
    monkeypatch.setenv("nnUNet_n_proc_DA", "0")  # training only: 0 crashes nnU-Net's planning
    trainer = train(992, "3d_fullres", 0, "nnLandmarkTrainer_tiny", plans, device="cpu")
    assert "ResidualEncoderUNet" in type(trainer.network).__name__
    with torch.no_grad():
        out = trainer.network(torch.zeros(1, 1, *trainer.configuration_manager.patch_size))
    assert out.shape[1] == 3  # one channel per landmark, no background, no deep-supervision list
    summary = json.loads((nnunet_dirs / "nnUNet_results" / "Dataset992_ResEnc" /
                          "nnLandmarkTrainer_tiny__nnUNetResEncUNetMPlans__3d_fullres" / "fold_0" / "validation" /
                          "summary.json").read_text())
    assert summary["n_cases"] == 1 and summary["n_landmarks"] == 3


@pytest.mark.slow
def test_another_architecture_enters_through_the_plans_and_predicts(nnunet_dirs, monkeypatch, tmp_path):
    """docs/design.md "Another architecture": a plans file whose configuration names another network class (here
    dynamic-network-architectures' ResidualUNet, residual blocks in the decoder too, which no nnU-Net preset uses)
    trains and predicts with N landmark heads, no code change."""
    from nnlandmark.commands import predict
    raw = make_synthetic_dataset(str(nnunet_dirs / "nnUNet_raw"), 997, "Arch", n_train=5, n_test=1, size=32)
    plan_and_preprocess(997, ("3d_fullres",))
    folder = nnunet_dirs / "nnUNet_preprocessed" / "Dataset997_Arch"
    plans = json.loads((folder / "nnUNetPlans.json").read_text())
    plans["plans_name"] = "ResidualUNetPlans"
    architecture = plans["configurations"]["3d_fullres"]["architecture"]
    architecture["network_class_name"] = "dynamic_network_architectures.architectures.unet.ResidualUNet"
    kwargs = architecture["arch_kwargs"]
    kwargs["n_blocks_per_stage"] = kwargs.pop("n_conv_per_stage")
    (folder / "ResidualUNetPlans.json").write_text(json.dumps(plans))
    monkeypatch.setenv("nnUNet_n_proc_DA", "0")
    trainer = train(997, "3d_fullres", 0, "nnLandmarkTrainer_tiny", "ResidualUNetPlans", device="cpu")
    assert type(trainer.network).__name__ == "ResidualUNet"
    predict.main(["-i", f"{raw}/imagesTs", "-o", str(tmp_path / "out"), "-d", "997", "-tr", "nnLandmarkTrainer_tiny",
                  "-p", "ResidualUNetPlans", "-device", "cpu", "--disable_tqdm", "-npp", "0"])
    landmarks = json.loads((tmp_path / "out" / "sphere_005.json").read_text())["landmarks"]
    assert set(landmarks) == {"small_sphere", "medium_sphere", "large_sphere"}
