"""2D images through the commands as a radiograph user runs them: PNG files without spacing and ``name,i,j`` pixel
CSVs -> convert --spacing -> plan (nnU-Net's 2d configuration, no trainer name) -> train (short) -> predict the PNG
files themselves -> Slicer files and QC pictures of the 2D image -> evaluate in mm."""
import json
import os

import numpy as np
import pytest
import SimpleITK as sitk

from nnlandmark.commands import predict
from nnlandmark.dataset_conversion.synthetic import write_planar_sources
from nnlandmark.evaluation.qc import PANEL
from nnlandmark.io.landmark_files import read_landmark_file

pytestmark = pytest.mark.slow
DATASET, EPOCHS, SPACING = 993, 20, 0.8


@pytest.fixture(scope="module")
def radiographs(tmp_path_factory, cli, set_epochs):
    root = tmp_path_factory.mktemp("radiographs")
    env = {**os.environ, "nnUNet_raw": str(root / "raw"), "nnUNet_preprocessed": str(root / "pre"),
           "nnUNet_results": str(root / "results"), "nnUNet_n_proc_DA": "1"}
    images, landmarks = write_planar_sources(str(root / "sources"), n_cases=20, size=96, n_outline=4, n_inner=3,
                                             seed=4)
    cli("nnLandmark_convert", env, "-i", images, "-l", landmarks, "-d", DATASET, "-n", "Radiographs",
        "--spacing", SPACING, SPACING, "--test-fraction", 0.2)
    planned = cli("nnLandmark_plan_and_preprocess", env, "-d", DATASET, "-device", "cpu")
    plans_file = root / "pre" / "Dataset993_Radiographs" / "nnLandmarkCPUPlans.json"
    set_epochs(plans_file, "2d", EPOCHS)
    cli("nnLandmark_train", env, DATASET, "2d", 0, "-device", "cpu")
    raw = root / "raw" / "Dataset993_Radiographs"
    tests = sorted(p.name[:-len("_0000.nii.gz")] for p in (raw / "imagesTs").iterdir())
    pngs = [os.path.join(images, f"{case}.png") for case in tests]
    cli("nnLandmark_predict", env, "-i", *pngs, "-o", root / "predictions", "-d", DATASET, "-device", "cpu",
        "--spacing", SPACING, SPACING, "--disable_tqdm", "--format", "json,mrk.json", "--qc")
    return root, raw, env, planned, pngs


def test_png_radiographs_train_in_2d_and_land_on_their_pixels(radiographs, cli, mean_shape_mre):
    root, raw, env, planned, pngs = radiographs
    assert "2D images, one stage, 2d (nnLandmarkTrainer_CPU_SpatialSoftmax, 40 epochs" in planned
    truth = json.loads((raw / "all_landmarks_world.json").read_text())
    errors = []
    for png in pngs:
        case = os.path.basename(png)[:-len(".png")]
        prediction = json.loads((root / "predictions" / f"{case}.json").read_text())
        assert len(prediction["landmarks"]) == 7
        for name, entry in prediction["landmarks"].items():
            i, j, k = entry["voxel"]
            assert k == 0 and entry["world"][2] == 0 and 0 <= i < 96 and 0 <= j < 96
            np.testing.assert_allclose(entry["world"][:2], np.multiply([i, j], SPACING), atol=1e-6)  # PNG origin 0
            errors.append(np.linalg.norm(np.subtract(entry["world"], truth[case][name])))
        slicer = read_landmark_file(str(root / "predictions" / f"{case}.mrk.json"))
        np.testing.assert_allclose([slicer.points[n] for n in prediction["landmarks"]],
                                   [e["world"] for e in prediction["landmarks"].values()], atol=1e-6)
        picture = sitk.ReadImage(str(root / "predictions" / "qc" / f"{case}.png"))
        assert picture.GetWidth() == 2 * PANEL    # the 2D image's one view, not three of a one-slice volume
    out = cli("nnLandmark_evaluate", env, "-pred", root / "predictions", "-gt", raw / "all_landmarks_world.json")
    summary = json.loads((root / "predictions" / "evaluation" / "summary.json").read_text())
    assert summary["mre_mm"] == pytest.approx(np.mean(errors), rel=1e-6)
    floor = mean_shape_mre(truth, [os.path.basename(p)[:-len(".png")] for p in pngs])
    assert summary["mre_mm"] < 0.5 * floor, (out, floor)   # a 20-epoch model finds the corners, not a mean shape
    cli("nnLandmark_evaluate", env, "-d", DATASET)          # the cross-validation of the 2d model, found unnamed
    model = next((root / "results" / "Dataset993_Radiographs").glob("*__nnLandmarkCPUPlans__2d"))
    crossval = json.loads((model / "crossval_evaluation" / "summary.json").read_text())
    assert crossval["n_cases"] == 4 and crossval["mre_mm"] < 0.5 * floor


def test_a_png_without_spacing_is_refused_before_any_prediction(radiographs, fails_with, monkeypatch, tmp_path):
    root, raw, env, planned, pngs = radiographs
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.setenv(name, env[name])
    err = fails_with(predict.main, ["-i", pngs[0], "-o", str(tmp_path / "out"), "-d", str(DATASET), "-device", "cpu"])
    assert err == (f"error: {pngs[0]} carries no pixel spacing: give --spacing SX SY in mm (the model was trained at "
                   f"{SPACING:g} x {SPACING:g} mm per pixel)")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
