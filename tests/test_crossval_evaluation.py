"""nnLandmark_evaluate -d: pooled cross-validation over fabricated fold_*/validation folders."""
import json

import numpy as np
import pytest
import SimpleITK as sitk

from nnlandmark.commands.evaluate import main
from nnlandmark.evaluation.crossval import cv_ground_truth

NAME = "Dataset011_CV"
MODEL = "nnLandmarkTrainer__nnUNetPlans__3d_fullres"


@pytest.fixture
def cv_model(nnunet_dirs, write_prediction):
    tmp_path = nnunet_dirs
    model = tmp_path / "nnUNet_results" / NAME / MODEL
    # errors: fold 0 -> a: 1, b: 4 ; fold 1 -> c: 2 ; fold 2 -> d: 5  (the fold's summary.json is not a prediction)
    write_prediction(model / "fold_0" / "validation", "a", {"L": [1, 0, 0]})
    write_prediction(model / "fold_0" / "validation", "b", {"L": [0, 4, 0]})
    (model / "fold_0" / "validation" / "summary.json").write_text(json.dumps({"mre_mm": 2.5, "landmarks": {}}))
    write_prediction(model / "fold_1" / "validation", "c", {"L": [0, 0, 2]})
    write_prediction(model / "fold_2" / "validation", "d", {"L": [3, 4, 0]})
    (model / "fold_3").mkdir()                                      # a fold without validation output
    return tmp_path, model


def test_cv_pools_folds_against_raw_ground_truth(cv_model, capsys):
    root, model = cv_model
    raw = root / "nnUNet_raw" / NAME
    raw.mkdir()
    (raw / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "L": 1}, "file_ending": ".nii.gz"}))
    (raw / "all_landmarks_world.json").write_text(json.dumps({c: {"L": [0, 0, 0]} for c in "abcde"}))
    assert main(["-d", NAME]) == 0
    out, err = capsys.readouterr()
    assert "3 fold(s) found (fold_0, fold_1, fold_2), 4 validation case(s) pooled" in out
    summary = json.loads((model / "crossval_evaluation" / "summary.json").read_text())
    assert summary["mre_mm"] == pytest.approx(3.0)                   # (1 + 4 + 2 + 5) / 4
    assert summary["std_mm"] == pytest.approx(np.sqrt(2.5))          # deviations -2, 1, -1, 2
    assert summary["sdr"]["2.0"] == pytest.approx(50.0)
    assert summary["cases_only_in_ground_truth"] == ["e"] and "e" in err


def test_cv_falls_back_to_preprocessed_label_maps(cv_model, tmp_path, capsys):
    root, model = cv_model
    pre = root / "nnUNet_preprocessed" / NAME
    (pre / "gt_segmentations").mkdir(parents=True)
    (pre / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "L": 1}, "file_ending": ".nii.gz"}))
    seg = np.zeros((5, 5, 5), np.uint8)
    seg[1:4, 1:4, 1:4] = 1                     # centre index (2, 2, 2); origin -4 and spacing 2 -> world (0, 0, 0)
    image = sitk.GetImageFromArray(seg)
    image.SetSpacing((2.0, 2.0, 2.0))
    image.SetOrigin((-4.0, -4.0, -4.0))
    for case in "abcd":
        sitk.WriteImage(image, str(pre / "gt_segmentations" / f"{case}.nii.gz"))
    assert main(["-d", NAME, "-o", str(tmp_path / "cv")]) == 0
    summary = json.loads((tmp_path / "cv" / "summary.json").read_text())
    assert summary["mre_mm"] == pytest.approx(3.0, abs=1e-6) and summary["n_cases"] == 4


def test_cv_errors(cv_model, capsys, write_prediction):
    root, model = cv_model
    with pytest.raises(SystemExit) as exc:
        main(["-d", NAME, "-tr", "OtherTrainer"])
    assert exc.value.code == 2 and "no trained model OtherTrainer__*__3d_fullres" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["-d", NAME, "-pred", str(root)])
    assert "either -pred" in capsys.readouterr().err
    write_prediction(model / "fold_1" / "validation", "a", {"L": [0, 0, 0]})   # a case validated twice
    with pytest.raises(SystemExit):
        main(["-d", NAME, "-gt", str(root / "gt.json")])
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "fold_1" in err and "'a'" in err


def test_cv_ground_truth_from_preprocessed_label_maps_says_which_landmarks_are_truly_absent(cv_model):
    root, _ = cv_model
    pre = root / "nnUNet_preprocessed" / NAME
    (pre / "gt_segmentations").mkdir(parents=True)
    (pre / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "L": 1, "M": 2, "N": 3},
                                                  "file_ending": ".nii.gz", "landmarks_may_be_absent": ["M"]}))
    seg = np.zeros((5, 5, 5), np.uint8)
    seg[1:4, 1:4, 1:4] = 1                     # only L has a cube: M is truly absent, N just not annotated
    sitk.WriteImage(sitk.GetImageFromArray(seg), str(pre / "gt_segmentations" / "a.nii.gz"))
    points, presence, source = cv_ground_truth(NAME)
    assert source == pre and presence == {"a": {"L": True, "M": False}}
    np.testing.assert_allclose(points["a"]["L"], [2, 2, 2])


def test_cv_keeps_the_detection_report_of_absent_landmarks(cv_model, write_prediction):
    """Landmark M may be absent: truly absent in b and d, predicted absent in b and c."""
    root, model = cv_model
    raw = root / "nnUNet_raw" / NAME
    raw.mkdir()
    (raw / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "L": 1, "M": 2}, "file_ending": ".nii.gz",
                                                  "landmarks_may_be_absent": ["M"]}))
    truth = {c: {"L": [0, 0, 0], "M": None if c in "bd" else [9, 9, 9]} for c in "abcd"}
    (raw / "all_landmarks_world.json").write_text(json.dumps(truth))
    for fold, case in (("fold_0", "a"), ("fold_0", "b"), ("fold_1", "c"), ("fold_2", "d")):
        write_prediction(model / fold / "validation", case, {"L": [0, 0, 1], "M": [9, 9, 9]},
                         absent=("M",) if case in "bc" else ())
    assert main(["-d", NAME]) == 0
    summary = json.loads((model / "crossval_evaluation" / "summary.json").read_text())
    m = summary["detection"]["per_landmark"]["M"]                  # a: TP, b: TN, c: FN, d: FP
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (1, 1, 1, 1) and m["precision"] == 0.5 and m["recall"] == 0.5
    assert summary["per_landmark"]["M"]["n"] == 1 and summary["mre_mm"] == pytest.approx(1.0 * 4 / 5)
