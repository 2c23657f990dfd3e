"""Evaluation and calibration refuse what they would otherwise misread: voxel ground truth, prediction files of
another shape, duplicate or unknown options, NaN likelihoods, and outputs they cannot finish writing."""
import json

import numpy as np
import pytest
import SimpleITK as sitk

from nnlandmark.commands import calibrate, evaluate
from nnlandmark.errors import LandmarkError
from nnlandmark.evaluation.pipeline import evaluate as evaluate_api
from nnlandmark.presence import read_thresholds

NAME = "Dataset012_Cal"
MODEL = "nnLandmarkTrainer__nnUNetPlans__3d_fullres"


def case_file(folder, case, landmarks):
    """A CASE.json with the given landmark entries, exactly as written here."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{case}.json"
    path.write_text(json.dumps({"case": case, "coordinate_system": "LPS", "landmarks": landmarks}))
    return path


# ------------------------------------------------------------------ ground truth that is not world coordinates

@pytest.fixture
def raw_dataset(tmp_path, write_prediction):
    """A converted dataset's two landmark files for one case, voxel index (10, 20, 5) at spacing 2 = world
    (20, 40, 10), and a prediction exactly on the landmark."""
    raw = tmp_path / "Dataset013_Vox"
    raw.mkdir()
    (raw / "all_landmarks_voxel.json").write_text(json.dumps({"c": {"A": [10, 20, 5]}}))
    (raw / "all_landmarks_world.json").write_text(json.dumps({"c": {"A": [20, 40, 10]}}))
    write_prediction(tmp_path / "pred", "c", {"A": [20, 40, 10]})
    return raw, tmp_path / "pred"


def test_voxel_ground_truth_is_refused_by_name_and_by_declaration(raw_dataset, fails_with, tmp_path):
    raw, pred = raw_dataset
    err = fails_with(evaluate.main, ["-pred", str(pred), "-gt", str(raw / "all_landmarks_voxel.json")])
    assert "all_landmarks_voxel.json holds voxel indices, not world coordinates" in err
    assert "all_landmarks_world.json" in err and not (pred / "evaluation").exists()
    declared = tmp_path / "truth.json"
    declared.write_text(json.dumps({"coordinate_system": "voxel", "c": {"A": [10, 20, 5]}}))
    err = fails_with(evaluate.main, ["-pred", str(pred), "-gt", str(declared)])
    assert "truth.json holds voxel indices" in err
    assert evaluate.main(["-pred", str(pred), "-gt", str(raw / "all_landmarks_world.json")]) == 0
    assert json.loads((pred / "evaluation" / "summary.json").read_text())["mre_mm"] == 0.0


def test_declared_ground_truth_systems(tmp_path, write_prediction, fails_with):
    write_prediction(tmp_path / "pred", "c", {"A": [1, 2, 7]})
    ras = tmp_path / "ras.json"
    ras.write_text(json.dumps({"coordinate_system": "RAS", "c": {"A": [-1, -2, 3]}}))   # LPS (1, 2, 3): 4 mm off
    assert evaluate_api(tmp_path / "pred", ras)["mre_mm"] == pytest.approx(4.0)
    lps = tmp_path / "lps.json"
    lps.write_text(json.dumps({"coordinate_system": "LPS", "c": {"A": [1, 2, 4]}}))
    assert evaluate_api(tmp_path / "pred", lps)["mre_mm"] == pytest.approx(3.0)
    other = tmp_path / "ijk.json"
    other.write_text(json.dumps({"coordinate_system": "IJK", "c": {"A": [1, 2, 4]}}))
    err = fails_with(evaluate.main, ["-pred", str(tmp_path / "pred"), "-gt", str(other)])
    assert "ijk.json: coordinate_system must be 'LPS', 'RAS' or 'voxel', got 'IJK'" in err


# ------------------------------------------------------------------ prediction files of another shape

BAD_ENTRIES = {
    "no world": ({"label": 1, "voxel": [1, 2, 3], "likelihood": 0.9}, 'no "world" position'),
    "world of two numbers": ({"world": [1.0, 2.0]}, "not three finite numbers"),
    "world with text": ({"world": [1.0, "x", 3.0]}, "not three numbers"),
    "world with NaN": ({"world": [1.0, float("nan"), 3.0]}, "not three finite numbers"),
    "present as a string": ({"world": [1.0, 2.0, 3.0], "present": "false"}, '"present" must be true or false'),
    "entry that is a list": ([1.0, 2.0, 3.0], "must be an object"),
}


@pytest.mark.parametrize("kind", BAD_ENTRIES)
def test_prediction_entries_of_another_schema_are_refused_not_read_as_absent(kind, tmp_path, fails_with):
    entry, problem = BAD_ENTRIES[kind]
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"c": {"A": [0, 0, 0], "B": [0, 0, 0]}}))
    path = case_file(tmp_path / "pred", "c", {"A": {"world": [0.0, 0.0, 1.0]}, "B": entry})
    err = fails_with(evaluate.main, ["-pred", str(tmp_path / "pred"), "-gt", str(gt)])
    assert f"{path}: landmark 'B'" in err and problem in err
    assert not (tmp_path / "pred" / "evaluation").exists()


def test_present_false_without_a_position_is_predicted_absent(tmp_path):
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"c": {"A": [0, 0, 0], "B": None}}))
    case_file(tmp_path / "pred", "c", {"A": {"world": [0.0, 0.0, 1.0]}, "B": {"world": None, "present": False}})
    summary = evaluate_api(tmp_path / "pred", gt)
    assert summary["mre_mm"] == 1.0 and summary["n_pairs"] == 1
    assert summary["detection"]["per_landmark"]["B"]["tn"] == 1


# ------------------------------------------------------------------ options

def test_the_same_prediction_folder_twice_is_refused(tmp_path, write_prediction, fails_with):
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"c": {"A": [0, 0, 0]}}))
    write_prediction(tmp_path / "pred", "c", {"A": [0, 0, 1]})
    err = fails_with(evaluate.main, ["-pred", str(tmp_path / "pred"), str(tmp_path / "pred" / ".." / "pred"),
                                     "-gt", str(gt)])
    assert "-pred names the prediction folder" in err and "twice" in err and str(tmp_path / "pred") in err
    assert not (tmp_path / "comparison").exists()


def test_single_folder_options_are_refused_in_a_comparison(tmp_path, write_prediction, fails_with):
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"c": {"A": [0, 0, 0], "B": [0, 0, 5]}}))
    write_prediction(tmp_path / "one", "c", {"A": [0, 0, 1], "B": [0, 0, 5]})
    write_prediction(tmp_path / "two", "c", {"A": [0, 0, 2], "B": [0, 0, 5]})
    for extra in (["--pairs", "A:B"], ["--qc", "1"]):
        err = fails_with(evaluate.main, ["-pred", str(tmp_path / "one"), str(tmp_path / "two"), "-gt", str(gt),
                                         *extra])
        assert extra[0] in err and "several -pred folders" in err
    assert not (tmp_path / "comparison").exists()


def test_pairs_naming_an_unknown_landmark_are_refused(tmp_path, write_prediction, fails_with):
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"c": {"A": [0, 0, 0], "B": [0, 0, 5]}}))
    write_prediction(tmp_path / "pred", "c", {"A": [0, 0, 1], "B": [0, 0, 5]})
    err = fails_with(evaluate.main, ["-pred", str(tmp_path / "pred"), "-gt", str(gt), "--pairs", "A:Bx"])
    assert err == "error: --pairs names unknown landmark 'Bx'; known: A, B"
    assert not (tmp_path / "pred" / "evaluation").exists()


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_sdr_thresholds_must_be_finite_and_non_negative(value, tmp_path, write_prediction, fails_with):
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"c": {"A": [0, 0, 0]}}))
    write_prediction(tmp_path / "pred", "c", {"A": [0, 0, 1]})
    err = fails_with(evaluate.main, ["-pred", str(tmp_path / "pred"), "-gt", str(gt), "--thresholds", "2", value])
    assert "--thresholds must be finite numbers of mm >= 0" in err
    assert not (tmp_path / "pred" / "evaluation").exists()


# ------------------------------------------------------------------ outputs

@pytest.fixture
def qc_dataset(tmp_path, write_prediction):
    """A raw dataset with two images; case w is predicted 5 mm off (the worst), g exactly."""
    root = tmp_path / "Dataset014_QC"
    (root / "imagesTr").mkdir(parents=True)
    (root / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "L": 1}, "file_ending": ".nii.gz"}))
    image = sitk.GetImageFromArray(np.arange(1000, dtype=np.float32).reshape(10, 10, 10))
    for case in ("w", "g"):
        sitk.WriteImage(image, str(root / "imagesTr" / f"{case}_0000.nii.gz"))
    (root / "all_landmarks_world.json").write_text(json.dumps({"w": {"L": [4, 4, 4]}, "g": {"L": [4, 4, 4]}}))
    write_prediction(tmp_path / "pred", "w", {"L": [4, 7, 8]})
    write_prediction(tmp_path / "pred", "g", {"L": [4, 4, 4]})
    return root, tmp_path / "pred"


def test_qc_that_cannot_finish_leaves_no_summary_and_no_pictures(qc_dataset, tmp_path, fails_with):
    root, pred = qc_dataset
    out = tmp_path / "out"
    (root / "imagesTr" / "g_0000.nii.gz").write_bytes(b"not an image")       # the second QC picture fails
    err = fails_with(evaluate.main, ["-pred", str(pred), "-gt", str(root), "-o", str(out), "--qc", "2"])
    assert "g_0000.nii.gz" in err
    assert not [p for p in out.rglob("*") if p.is_file()]                    # w.png removed again, no summary
    (root / "imagesTr" / "g_0000.nii.gz").unlink()                           # now missing: found before writing
    err = fails_with(evaluate.main, ["-pred", str(pred), "-gt", str(root), "-o", str(out), "--qc", "2"])
    assert "no image g_0000.nii.gz" in err and not [p for p in out.rglob("*") if p.is_file()]
    assert evaluate.main(["-pred", str(pred), "-gt", str(root), "-o", str(out), "--qc", "1"]) == 0
    assert json.loads((out / "summary.json").read_text())["mre_mm"] == pytest.approx(2.5)
    assert [p.name for p in (out / "qc").iterdir()] == ["w.png"]


def test_an_output_folder_that_is_a_file_is_refused_before_anything_is_read(tmp_path, write_prediction,
                                                                            fails_with):
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"c": {"A": [0, 0, 0]}}))
    write_prediction(tmp_path / "one", "c", {"A": [0, 0, 1]})
    write_prediction(tmp_path / "two", "c", {"A": [0, 0, 2]})
    blocker = tmp_path / "results.txt"
    blocker.write_text("keep me")
    err = fails_with(evaluate.main, ["-pred", str(tmp_path / "one"), "-gt", str(gt), "-o", str(blocker)])
    assert f"output folder (-o) {blocker} is a file, not a folder" in err
    err = fails_with(evaluate.main, ["-pred", str(tmp_path / "one"), str(tmp_path / "two"), "-gt", str(gt),
                                     "-o", str(blocker / "sub")])
    assert f"{blocker / 'sub'} cannot be created: {blocker} is a file" in err
    assert blocker.read_text() == "keep me"


def test_an_output_folder_that_is_not_writable_is_refused(tmp_path, write_prediction, unwritable_folder, fails_with):
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"c": {"A": [0, 0, 0]}}))
    write_prediction(tmp_path / "pred", "c", {"A": [0, 0, 1]})
    err = fails_with(evaluate.main, ["-pred", str(tmp_path / "pred"), "-gt", str(gt), "-o", str(unwritable_folder)])
    assert f"output folder (-o) {unwritable_folder} is not writable" in err


# ------------------------------------------------------------------ calibration

@pytest.fixture
def cal_model(nnunet_dirs):
    """Landmark M may be absent; truly absent in b and d. Fold 0 validates a, b; fold 1 validates c, d."""
    root = nnunet_dirs
    raw = root / "nnUNet_raw" / NAME
    raw.mkdir()
    info = {"labels": {"background": 0, "L": 1, "M": 2}, "file_ending": ".nii.gz", "landmarks_may_be_absent": ["M"]}
    (raw / "dataset.json").write_text(json.dumps(info))
    (raw / "all_landmarks_world.json").write_text(json.dumps(
        {c: {"L": [0, 0, 0], "M": None if c in "bd" else [5, 5, 5]} for c in "abcd"}))
    model = root / "nnUNet_results" / NAME / MODEL
    model.mkdir(parents=True)
    (model / "dataset.json").write_text(json.dumps(info))
    likelihood = {"a": 0.9, "b": 0.1, "c": 0.7, "d": 0.3}
    for fold, cases in (("fold_0", "ab"), ("fold_1", "cd")):
        for c in cases:
            case_file(model / fold / "validation", c, {
                "L": {"world": [0.0, 0.0, 0.0], "likelihood": 0.95, "present": True},
                "M": {"world": [5.0, 5.0, 5.0], "likelihood": likelihood[c], "present": True}})
    return model


def set_likelihood(model, fold, case, value):
    path = model / fold / "validation" / f"{case}.json"
    data = json.loads(path.read_text())
    data["landmarks"]["M"]["likelihood"] = value
    path.write_text(json.dumps(data))
    return path


def test_calibration_on_fabricated_folds(cal_model, fails_with):
    # the fabricated validation files carry no peak features: the thresholds are written, the error model is not
    err = fails_with(calibrate.main, ["-d", NAME])
    assert "landmark_thresholds.json written, but no error calibration:" in err and "has no \"peak\" features" in err
    assert not (cal_model / "landmark_uncertainty.json").exists()
    thresholds = json.loads((cal_model / "landmark_thresholds.json").read_text())
    assert thresholds["M"]["threshold"] == pytest.approx(0.5)     # midway between absent 0.3 and present 0.7
    assert thresholds["M"]["sensitivity"] == 1.0 and thresholds["M"]["specificity"] == 1.0
    assert read_thresholds(str(cal_model)) == pytest.approx({"L": 0.0, "M": 0.5})


@pytest.mark.parametrize("value, problem", [(float("nan"), "has likelihood nan"),
                                            ("high", "has likelihood 'high', not a number"),
                                            (None, "has likelihood None, not a number")])
def test_calibration_refuses_likelihoods_that_are_not_finite_numbers(cal_model, fails_with, value, problem):
    path = set_likelihood(cal_model, "fold_1", "c", value)
    err = fails_with(calibrate.main, ["-d", NAME])
    assert f"{path}: landmark 'M' {problem}" in err
    assert not (cal_model / "landmark_thresholds.json").exists()


def test_calibration_refuses_a_case_validated_in_two_folds(cal_model, fails_with):
    case_file(cal_model / "fold_1" / "validation", "a", {"M": {"world": [5.0, 5.0, 5.0], "likelihood": 0.2}})
    err = fails_with(calibrate.main, ["-d", NAME])
    assert "case 'a' is validated in both fold_0 and fold_1" in err
    assert not (cal_model / "landmark_thresholds.json").exists()
    err = fails_with(evaluate.main, ["-d", NAME])                 # the pooled evaluation says the same
    assert "case 'a' is validated in both fold_0 and fold_1" in err


def test_calibration_refuses_folds_without_any_ground_truth_case(cal_model, fails_with):
    raw = cal_model.parents[2] / "nnUNet_raw" / NAME
    (raw / "all_landmarks_world.json").write_text(json.dumps({"x": {"L": [0, 0, 0], "M": None}}))
    err = fails_with(calibrate.main, ["-d", NAME])
    assert "no validation case" in err and str(raw) in err
    assert not (cal_model / "landmark_thresholds.json").exists()


def test_a_thresholds_file_with_nan_is_refused(cal_model):
    (cal_model / "landmark_thresholds.json").write_text('{"M": {"threshold": NaN}}')
    with pytest.raises(LandmarkError, match="threshold of 'M' is nan, not a finite number"):
        read_thresholds(str(cal_model))
