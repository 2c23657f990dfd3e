"""plan -> train (short CPU schedule) -> predict -> evaluate through the console scripts, as a user runs them."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nnlandmark.dataset_conversion.synthetic import make_synthetic_dataset
from nnlandmark.landmark_files import read_fcsv, read_mrk_json

BIN = Path(sys.executable).parent


def run(command, env, *args):
    result = subprocess.run([str(BIN / command), *map(str, args)], env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    env = {**os.environ, "nnUNet_raw": str(root / "raw"), "nnUNet_preprocessed": str(root / "pre"),
           "nnUNet_results": str(root / "results"), "nnUNet_n_proc_DA": "1"}
    raw = Path(make_synthetic_dataset(env["nnUNet_raw"], 991, "E2E", n_train=20, n_test=4, seed=3))
    run("nnLandmark_plan_and_preprocess", env, "-d", 991, "--verify_dataset_integrity", "--cpu_plans")
    run("nnLandmark_train", env, 991, "3d_fullres", 0, "-tr", "nnLandmarkTrainer_CPU",
        "-p", "nnLandmarkCPUPlans", "-device", "cpu")
    return root, raw, env


def test_predict_and_evaluate_reach_under_two_voxels(trained):
    root, raw, env = trained
    predictions = root / "predictions"
    run("nnLandmark_predict", env, "-i", raw / "imagesTs", "-o", predictions, "-d", 991,
        "-tr", "nnLandmarkTrainer_CPU", "-p", "nnLandmarkCPUPlans", "-device", "cpu", "--disable_tqdm", "--qc",
        "--format", "json,mrk.json,fcsv,csv")
    files = sorted(f for f in predictions.glob("*.json") if not f.name.endswith(".mrk.json"))
    assert sorted(p.stem for p in (predictions / "qc").glob("*.png")) == [f.stem for f in files]
    assert [f.stem for f in files] == [f"sphere_{i:03d}" for i in range(20, 24)]
    case = json.loads(files[0].read_text())
    assert case["coordinate_system"] == "LPS" and case["case"] == "sphere_020"
    assert set(case["landmarks"]) == {"small_sphere", "medium_sphere", "large_sphere"}
    lm = case["landmarks"]["large_sphere"]
    assert lm["label"] == 3 and 0.0 <= lm["likelihood"] <= 1.0
    # world = origin + D (spacing * voxel) with the synthetic geometry: origin (-30, 12.5, 100), y flipped
    np.testing.assert_allclose(lm["world"], np.array([-30.0, 12.5, 100.0]) + np.array(lm["voxel"]) * [1, -1, 1])
    for reader, suffix in ((read_mrk_json, ".mrk.json"), (read_fcsv, ".fcsv")):
        points = reader(predictions / f"sphere_020{suffix}")
        assert set(points) == set(case["landmarks"])
        np.testing.assert_allclose(points["large_sphere"], lm["world"], atol=1e-6)

    out = run("nnLandmark_evaluate", env, "-pred", predictions, "-gt", raw / "all_landmarks_world.json",
              "-o", root / "evaluation")
    summary = json.loads((root / "evaluation" / "summary.json").read_text())
    assert summary["n_cases"] == 4 and summary["n_landmarks"] == 3
    assert summary["mre_mm"] < 2.0, out  # spacing is 1 mm: under 2 voxels


def test_final_validation_writes_case_files_and_summary(trained):
    root, _, _ = trained
    fold = root / "results" / "Dataset991_E2E" / "nnLandmarkTrainer_CPU__nnLandmarkCPUPlans__3d_fullres" / "fold_0"
    assert (fold / "checkpoint_final.pth").is_file() and (fold / "progress.png").is_file()
    summary = json.loads((fold / "validation" / "summary.json").read_text())
    split = json.loads((root / "pre" / "Dataset991_E2E" / "splits_final.json").read_text())[0]
    assert summary["n_cases"] == len(split["val"]) == 4 and summary["mre_mm"] < 3.0
    assert sorted(f.stem for f in (fold / "validation").glob("sphere_*.json")) == sorted(split["val"])


def test_python_api_matches_the_command_for_a_path_and_a_simpleitk_image(trained):
    import SimpleITK as sitk
    import torch
    from nnlandmark.inference.predictor import LandmarkPredictor

    root, raw, _ = trained
    predictor = LandmarkPredictor.from_model_folder(
        root / "results" / "Dataset991_E2E" / "nnLandmarkTrainer_CPU__nnLandmarkCPUPlans__3d_fullres", [0],
        device=torch.device("cpu"), allow_tqdm=False)
    image = raw / "imagesTs" / "sphere_021_0000.nii.gz"
    from_path = predictor.predict(str(image))
    from_image = predictor.predict(sitk.ReadImage(str(image)), case="sphere_021")
    from_command = json.loads((root / "predictions" / "sphere_021.json").read_text())
    assert from_path["image"] == "sphere_021_0000.nii.gz" and from_image["case"] == "sphere_021"
    for name, landmark in from_command["landmarks"].items():
        np.testing.assert_allclose(from_path["landmarks"][name]["voxel"], landmark["voxel"], atol=1e-6)
        np.testing.assert_allclose(from_image["landmarks"][name]["world"], landmark["world"], atol=1e-6)
