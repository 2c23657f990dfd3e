"""Mirror pairs: the left-right axis, label swapping in augmentation, channel swapping in test-time mirroring."""
import numpy as np
import pytest
import torch
from scipy import ndimage

from nnlandmark.errors import LandmarkError
from nnlandmark.inference.predictor import LandmarkPredictor
from nnlandmark.landmark_set import channel_permutation, label_swap, mirror_pairs
from nnlandmark.trainers.mirroring import PairSwappingMirrorTransform, dataset_left_right_axis

DATASET = {"labels": {"background": 0, "L eye": 1, "nose": 2, "R eye": 3}, "mirror_pairs": [["L eye", "R eye"]]}


def test_pairs_are_validated_and_become_label_and_channel_swaps():
    assert mirror_pairs(DATASET) == [("L eye", "R eye")]
    assert label_swap(DATASET) == {1: 3, 3: 1} and channel_permutation(DATASET) == [2, 1, 0]
    assert mirror_pairs({"labels": DATASET["labels"]}) == []
    for bad, message in (([["L eye", "ear"]], "is not a pair"), ([["L eye", "L eye"]], "is not a pair"),
                         ([["L eye", "R eye"], ["nose", "L eye"]], "'L eye' is in two pairs")):
        with pytest.raises(LandmarkError, match=message):
            mirror_pairs({**DATASET, "mirror_pairs": bad})


def case(direction):
    """nnU-Net's case properties of an image with this ITK direction."""
    return {"sitk_stuff": {"origin": (0.0, 0.0, 0.0), "spacing": (1.0, 1.0, 1.0), "direction": direction}}


def test_left_right_axis_follows_direction_and_transpose():
    identity = np.eye(3).ravel()
    assert dataset_left_right_axis([case(identity)], [0, 1, 2]) == 2      # ITK x = numpy axis 2
    assert dataset_left_right_axis([case(identity)], [2, 0, 1]) == 0      # ... moved to the front by the transpose
    x_on_itk_j = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]], float).ravel()  # world x along ITK axis 1
    assert dataset_left_right_axis([case(x_on_itk_j)], [0, 1, 2]) == 1
    with pytest.raises(LandmarkError, match="left-right axis differs between cases"):
        dataset_left_right_axis([case(identity), case(x_on_itk_j)], [0, 1, 2])


def test_a_flip_along_left_right_swaps_the_pair_and_nothing_else():
    seg = torch.zeros(1, 8, 10, 12, dtype=torch.int16)
    seg[0, 2:5, 2:5, 1:4] = 1     # L eye at low index along axis 2
    seg[0, 2:5, 2:5, 8:11] = 3    # R eye
    seg[0, 5:8, 6:9, 5:8] = 2     # nose
    seg[0, 0, 0, 0] = -1          # nnU-Net's outside-the-crop marker survives
    transform = PairSwappingMirrorTransform((2,), left_right_axis=2, swap=label_swap(DATASET))
    flipped = transform._apply_to_segmentation(seg, axes=[2]).numpy()[0]
    original = seg.numpy()[0]
    mirror = lambda c: (c[0], c[1], 11 - c[2])  # noqa: E731
    assert np.allclose(ndimage.center_of_mass(flipped == 1), mirror(ndimage.center_of_mass(original == 3)))
    assert np.allclose(ndimage.center_of_mass(flipped == 3), mirror(ndimage.center_of_mass(original == 1)))
    assert np.allclose(ndimage.center_of_mass(flipped == 2), mirror(ndimage.center_of_mass(original == 2)))
    assert flipped[0, 0, 11] == -1
    other_axis = PairSwappingMirrorTransform((0, 2), left_right_axis=2, swap=label_swap(DATASET))
    assert np.array_equal(other_axis._apply_to_segmentation(seg, axes=[0]).numpy()[0], original[::-1])


class SymmetryAwareNet(torch.nn.Module):
    """Channels [f(x), g(x), flip(f(flip x))]: channel 2 is exactly the mirror partner of channel 0, g is symmetric."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.f = torch.nn.Conv3d(1, 1, 3, padding=1)
        self.g = torch.nn.Conv3d(1, 1, 1)

    def forward(self, x):
        flipped = torch.flip(self.f(torch.flip(x, (4,))), (4,))
        return torch.cat([self.f(x), self.g(x) + torch.flip(self.g(x), (4,)), flipped], 1)


def test_test_time_mirroring_swaps_the_paired_channels_back():
    predictor = LandmarkPredictor(use_mirroring=True, allow_tqdm=False)
    predictor.network, predictor.dataset_json, predictor.allowed_mirroring_axes = SymmetryAwareNet(), DATASET, (2,)
    x = torch.randn(1, 1, 6, 7, 8)
    with torch.no_grad():
        direct = predictor.network(x)
        assert torch.allclose(predictor._internal_maybe_mirror_and_predict(x), direct, atol=1e-6)
        predictor.dataset_json = {"labels": DATASET["labels"]}  # no pairs declared: the channels would not match
        assert not torch.allclose(predictor._internal_maybe_mirror_and_predict(x), direct, atol=1e-3)


@pytest.mark.slow
def test_a_dataset_with_mirror_pairs_trains_with_pair_swapping_mirroring(nnunet_dirs, monkeypatch):
    import json
    from batchgeneratorsv2.transforms.spatial.mirroring import MirrorTransform
    from nnlandmark.dataset_conversion.synthetic import make_synthetic_dataset
    from nnlandmark.planning import plan_and_preprocess
    from nnlandmark.trainers.run import train

    raw = make_synthetic_dataset(str(nnunet_dirs / "nnUNet_raw"), 993, "Pairs", n_train=5, n_test=0, size=32)
    info = json.load(open(f"{raw}/dataset.json"))
    info["mirror_pairs"] = [["small_sphere", "large_sphere"]]  # wiring only: the spheres are not mirror images
    json.dump(info, open(f"{raw}/dataset.json", "w"))
    plan_and_preprocess(993, ("3d_fullres",))
    monkeypatch.setenv("nnUNet_n_proc_DA", "0")
    trainer = train(993, "3d_fullres", 0, "nnLandmarkTrainer_tiny", "nnUNetPlans", device="cpu")
    # synthetic images: ITK axis 0 runs along world x, i.e. numpy axis 2, untransposed for isotropic data
    assert trainer.plans_manager.transpose_forward == [0, 1, 2] and trainer.inference_allowed_mirroring_axes == (2,)
    transforms = trainer.get_training_transforms(trainer.configuration_manager.patch_size, None, None, (2,), False)
    mirrors = [t for t in transforms.transforms if isinstance(t, MirrorTransform)]
    assert len(mirrors) == 1 and isinstance(mirrors[0], PairSwappingMirrorTransform)
    assert mirrors[0].lookup[1] == 3 and mirrors[0].lookup[3] == 1
    checkpoint = torch.load(f"{trainer.output_folder}/checkpoint_final.pth", weights_only=False)
    assert checkpoint["inference_allowed_mirroring_axes"] == (2,)
