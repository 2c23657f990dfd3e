"""A multi-instance class through the commands as a user runs them: CSV files with repeated names -> convert
--multi-instance -> plan -> train (default path, short) -> the final validation calibrates the instance threshold ->
predict -> Slicer files -> evaluate with Hungarian matching."""
import json
import os

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from nnlandmark.dataset_conversion.synthetic import write_instance_sources
from nnlandmark.io.landmark_files import read_landmark_file

pytestmark = pytest.mark.slow
DATASET = 992
EPOCHS = 15


@pytest.fixture(scope="module")
def contacts(tmp_path_factory, cli, set_epochs):
    root = tmp_path_factory.mktemp("contacts")
    env = {**os.environ, "nnUNet_raw": str(root / "raw"), "nnUNet_preprocessed": str(root / "pre"),
           "nnUNet_results": str(root / "results"), "nnUNet_n_proc_DA": "1"}
    images, landmarks = write_instance_sources(str(root / "sources"), n_cases=20, size=40, max_contacts=4, seed=2)
    cli("nnLandmark_convert", env, "-i", images, "-l", landmarks, "-d", DATASET, "-n", "Contacts",
        "--multi-instance", "contact", "--test-fraction", 0.2)
    cli("nnLandmark_plan_and_preprocess", env, "-d", DATASET, "--cpu_plans")
    plans_file = root / "pre" / "Dataset992_Contacts" / "nnLandmarkCPUPlans.json"
    set_epochs(plans_file, "3d_fullres", EPOCHS)
    cli("nnLandmark_train", env, DATASET, "3d_fullres", 0, "-device", "cpu")
    raw = root / "raw" / "Dataset992_Contacts"
    cli("nnLandmark_predict", env, "-i", raw / "imagesTs", "-o", root / "predictions", "-d", DATASET,
        "-device", "cpu", "--disable_tqdm", "--format", "json,mrk.json,csv", "--save_labelmap")
    return root, raw, env


def test_final_validation_calibrates_threshold_and_nms_distance(contacts, cli):
    root, raw, env = contacts
    model = next((root / "results" / "Dataset992_Contacts").glob("*__nnLandmarkCPUPlans__3d_fullres"))
    calibration = json.loads((model / "instance_detection.json").read_text())["contact"]
    assert 0.05 <= calibration["threshold"] <= 1.0 and calibration["nms_mm"] > 0 and calibration["n_cases"] == 4
    validated = json.loads(next((model / "fold_0" / "validation").glob("contacts_*.json")).read_text())
    assert all(e["likelihood"] >= 0.05 for e in validated["instances"]["contact"])   # every candidate listed
    cli("nnLandmark_evaluate", env, "-d", DATASET)          # the pooled folds, decoded with that calibration
    pooled = json.loads((model / "crossval_evaluation" / "summary.json").read_text())["instances"]["per_class"]
    truth = json.loads((raw / "all_instances_world.json").read_text())
    validation = [p.stem for p in (model / "fold_0" / "validation").glob("contacts_*.json")]
    assert pooled["contact"]["tp"] + pooled["contact"]["fn"] == sum(len(truth[c]["contact"]) for c in validation)
    assert pooled["contact"]["f1"] == pytest.approx(calibration["f1"])   # what the calibration found on them


def test_the_class_trains_with_cones_half_as_wide_as_its_instances_lie_apart(contacts):
    root, _, _ = contacts
    plans = json.loads((root / "pre" / "Dataset992_Contacts" / "nnLandmarkCPUPlans.json").read_text())
    gap = plans["nnlandmark_instance_gap_mm"]["contact"]
    assert 10.0 < gap < 20.0            # the generator keeps contacts more than 10 voxels (of 1 mm) apart
    model = next((root / "results" / "Dataset992_Contacts").glob("*__nnLandmarkCPUPlans__3d_fullres"))
    log = next((model / "fold_0").glob("training_log_*.txt")).read_text()
    assert f"heatmap cone radius: 15.00 voxels of 3d_fullres; class channel 2: {gap / 2:.2f}" in log


def test_predicted_instances_are_found_matched_and_written_for_slicer(contacts, cli):
    root, raw, env = contacts
    truth = json.loads((raw / "all_instances_world.json").read_text())
    predictions = sorted(p for p in (root / "predictions").glob("contacts_*.json") if ".mrk" not in p.name)
    assert len(predictions) == 4
    label = json.loads((raw / "dataset.json").read_text())["labels"]["contact"]
    for path in predictions:
        case = json.loads(path.read_text())
        assert set(case["landmarks"]) == {"medium_sphere", "large_sphere"}
        found = case["instances"]["contact"]
        likelihoods = [e["likelihood"] for e in found]
        assert likelihoods == sorted(likelihoods, reverse=True)
        slicer = read_landmark_file(str(path.with_suffix(".mrk.json")), repeatable={"contact"})
        np.testing.assert_allclose(np.reshape(slicer.instances.get("contact", []), (-1, 3)),
                                   np.reshape([e["world"] for e in found], (-1, 3)), atol=1e-6)
        assert abs(len(found) - len(truth[case["case"]]["contact"])) <= 2, path.name   # a 15-epoch model
        labelmap = sitk.GetArrayFromImage(sitk.ReadImage(str(path.with_suffix(".nii.gz"))))
        for entry in found:   # a cube of the class value at every instance (cubes of close instances may touch)
            i, j, k = np.round(entry["voxel"]).astype(int)
            assert labelmap[k, j, i] == label, (path.name, entry["voxel"])
        assert 1 <= ndimage.label(labelmap == label)[1] <= len(found) or not found
    out = cli("nnLandmark_evaluate", env, "-pred", root / "predictions", "-gt", raw, "--match_mm", 4, "--qc", 1)
    summary = json.loads((root / "predictions" / "evaluation" / "summary.json").read_text())
    contact = summary["instances"]["per_class"]["contact"]
    assert contact["tp"] + contact["fn"] == sum(len(truth[p.stem]["contact"]) for p in predictions)
    # a 15-epoch model: matched errors of 0.3-0.7 mm in most runs, about 2.6 mm in the worst seen
    assert contact["f1"] >= 0.8 and contact["matched_mre_mm"] < 3.0 and contact["mean_abs_count_error"] <= 1, out
    worst = max(summary["per_case"], key=summary["per_case"].get)
    picture = sitk.ReadImage(str(root / "predictions" / "evaluation" / "qc" / f"{worst}.png"))
    rows = picture.GetHeight() // 224                      # one row of three slices per landmark and per instance
    assert rows >= 2 + len(truth[worst]["contact"]), (rows, worst)
    assert "Multi-instance classes, instances matched within 4 mm" in out
