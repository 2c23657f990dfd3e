"""Trainer registry, variants and the in-training landmark metric."""
import pytest
import torch

from nnlandmark.errors import LandmarkError
from nnlandmark.trainers import all_trainer_classes, trainer_class_by_name
from nnlandmark.trainers.nnLandmarkTrainer import nnLandmarkTrainer, patch_landmark_errors
from nnlandmark.trainers.variants import nnLandmarkTrainer_MSE


def test_paper_ablation_variants_change_one_attribute():
    classes = all_trainer_classes()
    for r in (7, 11, 19, 23):
        assert classes[f"nnLandmarkTrainer_EDT{r}"].heatmap_radius == r
    for k in (10, 50, 100):
        assert classes[f"nnLandmarkTrainer_TopK{k}"].topk_percent == k
    assert classes["nnLandmarkTrainer_5epochs"].epochs == 5
    assert nnLandmarkTrainer.heatmap_radius == 15 and nnLandmarkTrainer.topk_percent == 20
    assert (nnLandmarkTrainer.epochs, nnLandmarkTrainer.iterations) == (1000, 250)
    assert issubclass(nnLandmarkTrainer_MSE, nnLandmarkTrainer)


def test_unknown_trainer_names_the_alternatives():
    with pytest.raises(LandmarkError, match="unknown trainer 'nnUNetTrainer'.*nnLandmarkTrainer_EDT7"):
        trainer_class_by_name("nnUNetTrainer")
    assert trainer_class_by_name("nnLandmarkTrainer_TopK30").topk_percent == 30


def test_patch_landmark_error_measures_peak_to_centre_distance():
    seg = torch.zeros(1, 1, 10, 10, 10)
    seg[0, 0, 1:4, 1:4, 1:4] = 1      # centre (2, 2, 2)
    logits = torch.zeros(1, 2, 10, 10, 10)
    logits[0, 0, 5, 6, 2] = 9.0       # peak 3-4-0 away from the centre: distance 5
    logits[0, 1, 0, 0, 0] = 9.0       # landmark 2 is absent from the patch: not counted
    total, count = patch_landmark_errors(logits, seg, num_landmarks=2)
    assert total.tolist() == [5.0, 0.0] and count.tolist() == [1, 0]
