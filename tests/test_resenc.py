"""ResEnc presets: plans from nnUNetPlannerResEncM train with -p nnUNetResEncUNetMPlans."""
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
