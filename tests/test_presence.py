"""Absent landmarks: masked loss for unannotated ones, calibrated thresholds, detection precision/recall."""
import json
import pickle

import pytest
import torch

from nnlandmark.errors import LandmarkError
from nnlandmark.evaluation.detection import detection_summary
from nnlandmark.evaluation.ground_truth import read_ground_truth
from nnlandmark.io.images import preprocessed_case_properties
from nnlandmark.io.predictions import read_predictions
from nnlandmark.landmark_set import may_be_absent
from nnlandmark.losses import TopKBCEHeatmapLoss
from nnlandmark.presence import calibrate_threshold
from nnlandmark.trainers.nnLandmarkTrainer import annotated_in_cases

DATASET = {"labels": {"background": 0, "a": 1, "b": 2, "c": 3}}


def cube_patch():
    seg = torch.zeros(2, 1, 12, 12, 12)
    seg[:, :, 2:5, 2:5, 2:5] = 1
    seg[:, :, 7:10, 7:10, 7:10] = 2
    return seg


def test_unannotated_landmarks_do_not_contribute_to_the_loss():
    loss = TopKBCEHeatmapLoss(3, radius=5.0)
    logits = torch.randn(2, 3, 12, 12, 12, requires_grad=True)
    seg = cube_patch()
    annotated = torch.tensor([[True, True, False], [True, False, True]])
    masked = loss(logits, [seg, annotated])
    single = TopKBCEHeatmapLoss(1, radius=5.0)  # the same loss on one sample and one landmark at a time
    per_channel = torch.stack([single(logits[b:b + 1, c:c + 1], (seg[b:b + 1] == c + 1).float())
                               for b in range(2) for c in range(3)]).reshape(2, 3)
    assert torch.isclose(masked, per_channel[annotated].mean(), atol=1e-6)
    assert torch.isclose(loss(logits, seg), per_channel.mean(), atol=1e-6)
    masked.backward()
    assert logits.grad[0, 2].abs().max() == 0 and logits.grad[1, 1].abs().max() == 0
    assert logits.grad[0, 1].abs().max() > 0


def test_annotation_comes_from_class_locations_and_the_declaration(tmp_path):
    for case, locations in (("x", {1: [[0, 1, 2, 3]], 2: [[0, 4, 4, 4]], 3: []}), ("y", {1: [[0, 1, 1, 1]]})):
        with open(tmp_path / f"{case}.pkl", "wb") as f:
            pickle.dump({"class_locations": locations}, f)
    plain = annotated_in_cases(preprocessed_case_properties(str(tmp_path)), DATASET)
    assert plain["x"].tolist() == [True, True, False] and plain["y"].tolist() == [True, False, False]
    declared = annotated_in_cases(preprocessed_case_properties(str(tmp_path)),
                                  {**DATASET, "landmarks_may_be_absent": ["c"]})
    assert declared["y"].tolist() == [True, False, True]
    assert may_be_absent({**DATASET, "landmarks_may_be_absent": True}) == {"a", "b", "c"}
    with pytest.raises(LandmarkError, match="names 'z', which is not a landmark label"):
        may_be_absent({**DATASET, "landmarks_may_be_absent": ["z"]})


def test_threshold_maximises_balanced_accuracy_between_neighbours():
    result = calibrate_threshold([0.9, 0.8, 0.6], [0.1, 0.3, 0.7])
    # candidates 0.2, 0.45, 0.65, ...: 0.45 keeps all present (3/3) and rejects 2/3 absent; 0.65 ties, first wins
    assert result["threshold"] == pytest.approx(0.45)
    assert result["sensitivity"] == 1.0 and result["specificity"] == pytest.approx(2 / 3)
    assert calibrate_threshold([0.9, 0.2], [])["threshold"] == 0.0  # never absent: always present
    separable = calibrate_threshold([0.9, 0.95], [0.05, 0.1])
    assert separable["threshold"] == pytest.approx(0.5) and separable["specificity"] == 1.0


def test_detection_counts_and_present_false_is_left_out_of_mre(tmp_path):
    pred_dir = tmp_path / "pred"
    pred_dir.mkdir()
    landmarks = {"a": {"world": [0.0, 0.0, 0.0], "present": True}, "b": {"world": [1.0, 1.0, 1.0], "present": False}}
    (pred_dir / "c1.json").write_text(json.dumps({"case": "c1", "coordinate_system": "LPS", "landmarks": landmarks}))
    landmarks = {"a": {"world": [0.0, 0.0, 0.0], "present": True}, "b": {"world": [1.0, 1.0, 1.0], "present": True}}
    (pred_dir / "c2.json").write_text(json.dumps({"case": "c2", "coordinate_system": "LPS", "landmarks": landmarks}))
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"c1": {"a": [0, 0, 0], "b": None}, "c2": {"a": None, "b": [1, 1, 1]}}))
    assert set(read_predictions(pred_dir)[0]["c1"]) == {"a"}
    truth = read_ground_truth(gt)[1]
    assert truth == {"c1": {"a": True, "b": False}, "c2": {"a": False, "b": True}}
    detection = detection_summary(read_predictions(pred_dir)[1], truth)
    # c1/a TP, c1/b TN, c2/a FP, c2/b TP
    assert (detection["tp"], detection["fp"], detection["fn"], detection["tn"]) == (2, 1, 0, 1)
    assert detection["precision"] == pytest.approx(2 / 3) and detection["recall"] == 1.0
    assert detection["per_landmark"]["a"]["precision"] == 0.5
    assert detection_summary({"c": {"a": True}}, {"c": {"a": True}}) is None
