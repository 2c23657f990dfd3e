"""Planning keeps nnU-Net's behaviour and warns when resampling erases a landmark cube."""
import json

import numpy as np
import SimpleITK as sitk

from nnlandmark.dataset_conversion.labelmap import landmarks_to_labelmap
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
