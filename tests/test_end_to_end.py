"""plan -> train (short CPU schedule) -> predict -> evaluate through the console scripts, as a user runs them."""
import json

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from nnlandmark.errors import LandmarkError
from nnlandmark.io.landmark_files import read_fcsv, read_mrk_json

MODEL = "nnLandmarkTrainer_CPU__nnLandmarkCPUPlans__3d_fullres"


@pytest.fixture(scope="module")
def predictions(trained, cli):
    """The test cases predicted by the command with every output option; the later tests compare against them."""
    root, raw, env = trained
    cli("nnLandmark_predict", env, "-i", raw / "imagesTs", "-o", root / "predictions", "-d", 991,
        "-tr", "nnLandmarkTrainer_CPU", "-p", "nnLandmarkCPUPlans", "-device", "cpu", "--disable_tqdm", "--qc",
        "--format", "json,mrk.json,fcsv,csv", "--save_labelmap")
    return root / "predictions"


def test_predict_and_evaluate_reach_under_two_voxels(trained, predictions, cli):
    root, raw, env = trained
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
    labelmap = sitk.ReadImage(str(predictions / "sphere_020.nii.gz"))
    image = sitk.ReadImage(str(raw / "imagesTs" / "sphere_020_0000.nii.gz"))
    assert labelmap.GetOrigin() == image.GetOrigin() and labelmap.GetDirection() == image.GetDirection()
    cube = sitk.GetArrayFromImage(labelmap) == lm["label"]
    np.testing.assert_array_equal(ndimage.center_of_mass(cube)[::-1], np.rint(lm["voxel"]))
    for reader, suffix in ((read_mrk_json, ".mrk.json"), (read_fcsv, ".fcsv")):
        points = reader(predictions / f"sphere_020{suffix}")
        assert set(points) == set(case["landmarks"])
        np.testing.assert_allclose(points["large_sphere"], lm["world"], atol=1e-6)

    out = cli("nnLandmark_evaluate", env, "-pred", predictions, "-gt", raw / "all_landmarks_world.json",
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


def test_python_api_matches_the_command_for_a_path_and_a_simpleitk_image(trained, predictions):
    import torch
    from nnlandmark.inference.predictor import LandmarkPredictor

    root, raw, _ = trained
    predictor = LandmarkPredictor.from_model_folder(
        root / "results" / "Dataset991_E2E" / MODEL, [0],
        device=torch.device("cpu"), allow_tqdm=False)
    image = raw / "imagesTs" / "sphere_021_0000.nii.gz"
    from_path = predictor.predict(str(image))
    from_image = predictor.predict(sitk.ReadImage(str(image)), case="sphere_021")
    from_command = json.loads((predictions / "sphere_021.json").read_text())
    assert from_path["image"] == "sphere_021_0000.nii.gz" and from_image["case"] == "sphere_021"
    for name, landmark in from_command["landmarks"].items():
        np.testing.assert_allclose(from_path["landmarks"][name]["voxel"], landmark["voxel"], atol=1e-6)
        np.testing.assert_allclose(from_image["landmarks"][name]["world"], landmark["world"], atol=1e-6)


def test_search_around_a_prior_reads_each_maximum_near_it(trained, predictions, cli):
    """Coarse-to-fine: with a prior from a JSON file, a landmark is found only within --search_radius of it."""
    root, raw, env = trained
    truth = json.loads((raw / "all_landmarks_world.json").read_text())
    test_cases = [f"sphere_{i:03d}" for i in range(20, 24)]
    free = {c: json.loads((predictions / f"{c}.json").read_text())["landmarks"] for c in test_cases}
    # the small sphere's prior is put on the large sphere (> 14 mm away); the others' on their free prediction
    prior = {c: {"small_sphere": truth[c]["large_sphere"], **{n: free[c][n]["world"] for n in
                                                              ("medium_sphere", "large_sphere")}} for c in test_cases}
    (root / "prior.json").write_text(json.dumps(prior))
    out = root / "predictions_prior"
    cli("nnLandmark_predict", env, "-i", raw / "imagesTs", "-o", out, "-d", 991, "-tr", "nnLandmarkTrainer_CPU",
        "-p", "nnLandmarkCPUPlans", "-device", "cpu", "--disable_tqdm", "--search_around", root / "prior.json",
        "--search_radius", 8)
    for case in test_cases:
        restricted = json.loads((out / f"{case}.json").read_text())["landmarks"]
        error = lambda points, name, at: np.linalg.norm(np.subtract(points[name]["world"], truth[case][at]))  # noqa
        assert error(free[case], "small_sphere", "small_sphere") < 6.0    # free: on its own sphere, > 14 mm away
        assert error(restricted, "small_sphere", "large_sphere") <= 8.0   # restricted: pulled into the prior's ball
        for name in ("medium_sphere", "large_sphere"):  # a prior at the free maximum: its whole window is inside
            np.testing.assert_allclose(restricted[name]["world"], free[case][name]["world"], atol=1e-6)


def test_integer_peaks_give_the_papers_whole_voxels_near_the_refined_ones(trained, predictions, cli):
    root, raw, env = trained
    cli("nnLandmark_predict", env, "-i", raw / "imagesTs", "-o", root / "integer", "-d", 991, "-tr",
        "nnLandmarkTrainer_CPU", "-p", "nnLandmarkCPUPlans", "-device", "cpu", "--disable_tqdm", "--integer_peaks")
    refined, whole = [], []   # 1 mm isotropic, uncropped, untransposed: preprocessed voxels are the image's voxels
    for case in (f"sphere_{i:03d}" for i in range(20, 24)):
        for name, entry in json.loads((root / "integer" / f"{case}.json").read_text())["landmarks"].items():
            whole.append(entry["voxel"])
            refined.append(json.loads((predictions / f"{case}.json").read_text())["landmarks"][name]["voxel"])
    whole, refined = np.array(whole), np.array(refined)
    np.testing.assert_allclose(whole, np.rint(whole), atol=1e-9)
    assert np.abs(refined - np.rint(refined)).max() > 0.05
    assert np.abs(whole - refined).max() <= 8.0      # the refinement reads a 17^3 window around the integer peak


def test_two_folds_are_ensembled_by_averaging_their_heatmaps(trained, tmp_path):
    """Fold 1 is fold 0 with the output bias lowered by 1: its sigmoid heatmaps are lower but peak at the same
    voxels, so the ensemble peaks there too with a likelihood halfway between the two folds'. (Lowered, not raised:
    heatmaps are summed in half precision, where raised peaks saturate near 1 and tie with their neighbours.)"""
    import shutil
    import torch
    from nnlandmark.inference.predictor import LandmarkPredictor
    root, raw, _ = trained
    model = tmp_path / MODEL
    shutil.copytree(root / "results" / "Dataset991_E2E" / MODEL, model, ignore=shutil.ignore_patterns("validation"))
    checkpoint = torch.load(model / "fold_0" / "checkpoint_final.pth", weights_only=False)
    bias = [k for k in checkpoint["network_weights"] if "seg_layers" in k and k.endswith("bias")][-1]
    checkpoint["network_weights"][bias] -= 1.0
    (model / "fold_1").mkdir()
    torch.save(checkpoint, model / "fold_1" / "checkpoint_final.pth")
    image = str(raw / "imagesTs" / "sphere_022_0000.nii.gz")
    landmarks = {folds: LandmarkPredictor.from_model_folder(model, folds, device=torch.device("cpu"), allow_tqdm=False,
                                                            subvoxel=False).predict(image)["landmarks"]
                 for folds in ((0,), (1,), None)}             # None: every trained fold
    for name, ensemble in landmarks[None].items():
        low, high = landmarks[(1,)][name], landmarks[(0,)][name]
        assert low["likelihood"] < ensemble["likelihood"] < high["likelihood"]
        assert ensemble["likelihood"] == pytest.approx((low["likelihood"] + high["likelihood"]) / 2, abs=2e-3)
        np.testing.assert_allclose(ensemble["voxel"], low["voxel"], atol=1.01)
        np.testing.assert_allclose(ensemble["voxel"], high["voxel"], atol=1.01)


def test_disable_tta_leaves_out_the_mirrored_passes(trained, predictions, tmp_path, cli):
    """The CPU trainer allows no mirroring; a copy whose checkpoint allows it predicts otherwise, unless
    --disable_tta."""
    import shutil
    import torch
    root, raw, env = trained
    results = tmp_path / "results"
    shutil.copytree(root / "results" / "Dataset991_E2E" / MODEL, results / "Dataset991_E2E" / MODEL,
                    ignore=shutil.ignore_patterns("validation"))
    checkpoint_file = results / "Dataset991_E2E" / MODEL / "fold_0" / "checkpoint_final.pth"
    checkpoint = torch.load(checkpoint_file, weights_only=False)
    checkpoint["inference_allowed_mirroring_axes"] = (0, 1, 2)
    torch.save(checkpoint, checkpoint_file)
    env = {**env, "nnUNet_results": str(results)}
    voxels = {}
    for run, flags in (("mirrored", ()), ("disabled", ("--disable_tta",))):
        cli("nnLandmark_predict", env, "-i", raw / "imagesTs" / "sphere_021_0000.nii.gz", "-o", tmp_path / run,
            "-d", 991, "-f", 0, "-device", "cpu", "--disable_tqdm", *flags)
        voxels[run] = json.loads((tmp_path / run / "sphere_021.json").read_text())["landmarks"]
    plain = json.loads((predictions / "sphere_021.json").read_text())["landmarks"]   # the unchanged model
    for name, entry in voxels["disabled"].items():
        assert entry["voxel"] != voxels["mirrored"][name]["voxel"]            # eight passes averaged, or one
        assert entry["voxel"] == pytest.approx(plain[name]["voxel"], abs=1e-6)


def test_the_final_validation_calibrates_errors_and_predictions_carry_them_with_a_review_list(trained, cli):
    root, raw, env = trained
    model = root / "results" / "Dataset991_E2E" / MODEL
    calibration = json.loads((model / "landmark_uncertainty.json").read_text())
    assert calibration["n_cases"] == 4 and calibration["coverage"] == 0.9   # fold 0's validation cases
    out = root / "reviewed"
    printed = cli("nnLandmark_predict", env, "-i", raw / "imagesTs", "-o", out, "-d", 991, "-device", "cpu",
                  "--disable_tqdm", "--review", "0.001", "--qc")
    cases = {p.stem: json.loads(p.read_text()) for p in out.glob("sphere_*.json")}
    assert len(cases) == 4 and all(c["radius_coverage"] == 0.9 for c in cases.values())
    entries = [(case, name, e) for case, c in cases.items() for name, e in c["landmarks"].items()]
    for case, name, e in entries:   # a validation outlier may make the radius wide, never inverted or infinite
        assert 0 < e["expected_error_mm"] < e["radius_mm"] < np.inf, (case, name, e, calibration)
    rows = [line.split(",") for line in (out / "review.csv").read_text().splitlines()[1:]]
    assert "12 landmark(s) with an expected error above 0.001 mm" in printed
    worst_first = sorted(entries, key=lambda r: -r[2]["expected_error_mm"])
    assert [(r[0], r[1]) for r in rows] == [(case, name) for case, name, _ in worst_first]
    np.testing.assert_allclose([float(r[3]) for r in rows], [e["radius_mm"] for *_, e in worst_first], atol=1e-3)
    printed = cli("nnLandmark_evaluate", env, "-pred", out, "-gt", raw / "all_landmarks_world.json")
    section = json.loads((out / "evaluation" / "summary.json").read_text())["error_estimates"]
    assert section["n_pairs"] == 12 and section["radius_coverage_stated"] == 0.9
    assert "Error estimates (12 pairs)" in printed


def test_an_uncalibrated_model_gives_null_error_fields_and_refuses_a_review(trained):
    import torch
    from nnlandmark.inference.predictor import LandmarkPredictor

    root, raw, _ = trained
    predictor = LandmarkPredictor.from_model_folder(root / "results" / "Dataset991_E2E" / MODEL, [0],
                                                    device=torch.device("cpu"), allow_tqdm=False, error_model=None)
    prediction = predictor.predict(str(raw / "imagesTs" / "sphere_020_0000.nii.gz"))
    assert prediction["radius_coverage"] is None
    assert all(e["expected_error_mm"] is None and e["radius_mm"] is None for e in prediction["landmarks"].values())
    assert all(e["peak"]["half_max_radius_mm"] > 0 for e in prediction["landmarks"].values())
    with pytest.raises(LandmarkError, match="--review needs a calibrated model"):
        predictor.predict_folder(str(raw / "imagesTs"), str(root / "never"), review_mm=2.0)
    assert not (root / "never").exists()
