"""ResEnc presets: plans from nnUNetPlannerResEncM train with -p nnUNetResEncUNetMPlans."""
import json

import torch

from nnlandmark.dataset_conversion.synthetic import make_synthetic_dataset
from nnlandmark.planning import plan_and_preprocess
from nnlandmark.trainers.nnLandmarkTrainer import nnLandmarkTrainer
from nnlandmark.trainers.run import train


class nnLandmarkTrainer_tiny(nnLandmarkTrainer):
    """Two iterations: this test checks the wiring, not learning."""
    epochs, iterations, val_iterations = 1, 2, 1


def test_resenc_m_plans_train_and_validate(tmp_path, monkeypatch):
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.setenv(name, str(tmp_path / name))
    make_synthetic_dataset(str(tmp_path / "nnUNet_raw"), 992, "ResEnc", n_train=5, n_test=0, size=32)
    plans = plan_and_preprocess(992, ("3d_fullres",), planner="nnUNetPlannerResEncM")
    assert plans == "nnUNetResEncUNetMPlans"
    monkeypatch.setenv("nnUNet_n_proc_DA", "0")  # training only: 0 crashes nnU-Net's planning
    trainer = train(992, "3d_fullres", 0, "nnLandmarkTrainer_tiny", plans, device="cpu")
    assert "ResidualEncoderUNet" in type(trainer.network).__name__
    with torch.no_grad():
        out = trainer.network(torch.zeros(1, 1, *trainer.configuration_manager.patch_size))
    assert out.shape[1] == 3  # one channel per landmark, no background, no deep-supervision list
    summary = json.loads((tmp_path / "nnUNet_results" / "Dataset992_ResEnc" /
                          "nnLandmarkTrainer_tiny__nnUNetResEncUNetMPlans__3d_fullres" / "fold_0" / "validation" /
                          "summary.json").read_text())
    assert summary["n_cases"] == 1 and summary["n_landmarks"] == 3
