"""Heatmap targets and the top-k BCE loss against hand-computed values."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nnlandmark.heatmaps import edt_heatmaps, heatmap_targets, landmark_centres, soft_argmax, squared_distances
from nnlandmark.losses import (MSEHeatmapLoss, TopKBCECoordinateLoss, TopKBCEHeatmapLoss, TopKBCESpatialSoftmaxLoss,
                               spatial_softmax_cross_entropy)


def _seg(shape=(24, 20, 22)):
    seg = torch.zeros(2, 1, *shape)
    seg[0, 0, 4:7, 5:8, 6:9] = 2          # full cube, centre (5, 6, 7)
    seg[1, 0, 0:2, 9:12, 3:6] = 1         # cube cut by the patch border: centre (0.5, 10, 4)
    return seg


def test_centres_of_full_and_truncated_cubes_and_absent_labels():
    centres, present = landmark_centres(_seg(), num_landmarks=3)
    assert present.tolist() == [[False, True, False], [True, False, False]]
    np.testing.assert_allclose(centres[0, 1].numpy(), [5, 6, 7])
    np.testing.assert_allclose(centres[1, 0].numpy(), [0.5, 10, 4])


def test_heatmap_is_one_at_centre_linear_to_zero_at_radius_and_zero_when_absent():
    heat = heatmap_targets(_seg(), num_landmarks=3, radius=15.0)
    assert heat.shape == (2, 3, 24, 20, 22)
    assert heat[0, 1, 5, 6, 7] == 1.0
    assert math.isclose(heat[0, 1, 5, 6, 12].item(), 1 - 5 / 15, rel_tol=1e-6)         # 5 voxels along z
    assert math.isclose(heat[0, 1, 8, 10, 7].item(), 1 - 5 / 15, rel_tol=1e-6)         # (3, 4, 0): distance 5
    assert heat[0, 1, 20, 6, 7] == 0.0                                                   # 15 voxels: the radius
    assert torch.count_nonzero(heat[0, 0]) == 0 and torch.count_nonzero(heat[0, 2]) == 0  # absent labels
    # the truncated cube's cone is centred at its (shifted) centre of mass, 0.5 voxels from the border
    assert math.isclose(heat[1, 0, 0, 10, 4].item(), 1 - 0.5 / 15, rel_tol=1e-6)


def test_heatmap_matches_brute_force_distance():
    centres = torch.tensor([[[2.3, 4.1, 0.7]]])
    heat = edt_heatmaps(centres, torch.tensor([[True]]), (6, 7, 5), radius=4.0)
    zyx = np.stack(np.meshgrid(np.arange(6), np.arange(7), np.arange(5), indexing="ij"), -1)
    expected = np.clip(1 - np.linalg.norm(zyx - [2.3, 4.1, 0.7], axis=-1) / 4.0, 0, None)
    np.testing.assert_allclose(heat[0, 0].numpy(), expected, atol=1e-6)


def test_topk_bce_keeps_the_highest_fifth_per_sample_and_channel():
    torch.manual_seed(0)
    seg = _seg((10, 10, 10)).clamp(max=2)
    seg[0, 0, 4:7, 5:8, 6:9] = 2
    logits = torch.randn(2, 3, 10, 10, 10)
    loss = TopKBCEHeatmapLoss(num_landmarks=3, radius=15.0, k_percent=20)(logits, seg)
    target = heatmap_targets(seg, 3, 15.0)
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none").flatten(2).numpy()
    expected = np.mean([np.sort(bce[b, c])[-200:].mean() for b in range(2) for c in range(3)])
    assert math.isclose(loss.item(), expected, rel_tol=1e-5)
    full = TopKBCEHeatmapLoss(3, 15.0, k_percent=100)(logits, seg)
    assert math.isclose(full.item(), bce.mean(), rel_tol=1e-5) and loss.item() > full.item()


def test_mse_variant_compares_sigmoid_output_with_heatmap():
    seg = _seg((8, 8, 8)).clamp(max=1)
    logits = torch.zeros(2, 1, 8, 8, 8)  # sigmoid = 0.5 everywhere
    target = heatmap_targets(seg, 1, 15.0)
    expected = ((0.5 - target) ** 2).mean().item()
    assert math.isclose(MSEHeatmapLoss(1, 15.0)(logits, seg).item(), expected, rel_tol=1e-6)


def test_loss_is_differentiable():
    logits = torch.zeros(2, 3, 8, 8, 8, requires_grad=True)
    TopKBCEHeatmapLoss(3)(logits, _seg((8, 8, 8))).backward()
    assert logits.grad is not None and torch.count_nonzero(logits.grad) > 0


def test_a_label_margin_lets_a_landmark_outside_the_patch_cast_its_cone_into_it():
    seg = torch.zeros(1, 1, 16, 16, 16)
    seg[0, 0, 0:3, 7:10, 7:10] = 1               # centre (1, 8, 8): 3 voxels before the central 8^3 patch [4:12]
    logits = torch.randn(1, 1, 8, 8, 8)
    target = edt_heatmaps(torch.tensor([[[-3.0, 4.0, 4.0]]]), torch.tensor([[True]]), (8, 8, 8), radius=15.0)
    assert math.isclose(target[0, 0, 0, 4, 4].item(), 1 - 3 / 15, rel_tol=1e-6)  # the cone reaches into the patch
    expected = F.binary_cross_entropy_with_logits(logits, target, reduction="none").flatten(2).topk(102).values.mean()
    loss = TopKBCEHeatmapLoss(1, 15.0, k_percent=20)(logits, seg)
    assert math.isclose(loss.item(), expected.item(), rel_tol=1e-5)
    without = TopKBCEHeatmapLoss(1, 15.0, k_percent=20)(logits, seg[..., 4:12, 4:12, 4:12])  # the paper: no cone
    assert not math.isclose(loss.item(), without.item(), rel_tol=1e-3)


def test_soft_argmax_is_the_expected_position_under_the_spatial_softmax():
    logits = torch.zeros(1, 3, 5, 6, 7)
    logits[0, 0, 1, 2, 3] = 60.0                            # one dominant voxel
    logits[0, 1, 0, 0, 0] = logits[0, 1, 4, 4, 6] = 60.0    # two equal peaks: their midpoint
    logits[0, 2, 0, 0, 0] = math.log(209)                   # voxel (0,0,0) weighs as much as the 209 others together
    expected_2 = np.array([2.0, 2.5, 3.0]) * 210 / 418      # all 210 positions sum to 210 x the volume's centre
    np.testing.assert_allclose(soft_argmax(logits)[0].numpy(), [[1, 2, 3], [2, 2, 3], expected_2], atol=1e-5)


def test_coordinate_loss_adds_the_soft_argmax_distance_in_radii_for_present_landmarks():
    seg = torch.zeros(1, 1, 12, 12, 12)
    seg[0, 0, 4:7, 4:7, 4:7] = 1                  # landmark 1 at (5, 5, 5); landmark 2 absent from the patch
    logits = torch.full((1, 2, 12, 12, 12), -8.0)
    logits[0, 0, 5, 5, 8] = 40.0                  # channel 1 peaks 3 voxels off its landmark
    logits[0, 1, 0, 0, 0] = 40.0                  # channel 2: far away, but its landmark is not in this patch
    plain = TopKBCEHeatmapLoss(2, 15.0)(logits, seg)
    loss = TopKBCECoordinateLoss(2, 15.0, weight=2.0)(logits, seg)
    assert math.isclose(loss.item() - plain.item(), 2.0 * 3 / 15, rel_tol=1e-4)
    coordinate, plain_loss = TopKBCECoordinateLoss(2, 15.0, weight=2.0), TopKBCEHeatmapLoss(2, 15.0)
    annotated = torch.tensor([[False, True]])  # landmark 1 not annotated in this case: no distance term left
    assert math.isclose(coordinate(logits, [seg, annotated]).item(), plain_loss(logits, [seg, annotated]).item(),
                        rel_tol=1e-6)


def test_coordinate_loss_measures_landmarks_in_the_network_output_when_the_label_patch_has_a_margin():
    seg = torch.zeros(1, 1, 16, 16, 16)
    seg[0, 0, 6:9, 6:9, 6:9] = 1                  # (7, 7, 7) in the label patch = (3, 3, 3) in the central 8^3
    logits = torch.full((1, 1, 8, 8, 8), -8.0)
    logits[0, 0, 3, 3, 3] = 40.0
    loss = TopKBCECoordinateLoss(1, 15.0)(logits, seg)
    assert math.isclose(loss.item(), TopKBCEHeatmapLoss(1, 15.0)(logits, seg).item(), rel_tol=1e-5)


def test_spatial_softmax_cross_entropy_by_hand():
    logits = torch.zeros(1, 3, 2, 3, 4)  # 24 voxels
    logits[0, 1, 1, 2, 3] = math.log(24 - 1)  # channel 1: half of its softmax mass on one voxel
    target = torch.zeros(1, 3, 2, 3, 4)
    target[0, 0, 0, 0, 0] = 5.0                                   # uniform logits: -log(1/24) whatever the target
    target[0, 1, 1, 2, 3], target[0, 1, 0, 0, 0] = 3.0, 1.0       # 3/4 on p = 1/2, 1/4 on p = 1/46
    cross_entropy = spatial_softmax_cross_entropy(logits, target)
    assert cross_entropy[0, 2].item() == 0                        # no target mass: nothing to learn
    assert math.isclose(cross_entropy[0, 0].item(), math.log(24), rel_tol=1e-6)
    assert math.isclose(cross_entropy[0, 1].item(), 0.75 * math.log(2) + 0.25 * math.log(46), rel_tol=1e-6)
    shifted = spatial_softmax_cross_entropy(logits + torch.tensor([0.0, 7.0, 0.0])[None, :, None, None, None],
                                            target)
    assert math.isclose(shifted[0, 1].item(), cross_entropy[0, 1].item(), rel_tol=1e-6)  # no absolute level


def test_spatial_softmax_loss_adds_the_weighted_cross_entropy_of_channels_with_a_cone_in_the_patch():
    seg = torch.zeros(1, 1, 12, 12, 12)
    seg[0, 0, 4:7, 4:7, 4:7] = 1      # landmark 1 at (5, 5, 5); landmark 2 absent from the patch
    logits = torch.randn(1, 2, 12, 12, 12, generator=torch.Generator().manual_seed(0))
    target = heatmap_targets(seg, 2, 4.0)
    log_p = logits[0, 0].flatten().log_softmax(0)
    by_hand = -(target[0, 0].flatten() * log_p).sum() / target[0, 0].sum()   # the absent landmark adds nothing
    plain = TopKBCEHeatmapLoss(2, 4.0)(logits, seg)
    loss = TopKBCESpatialSoftmaxLoss(2, 4.0, weight=0.5)(logits, seg)
    assert math.isclose(loss.item() - plain.item(), 0.5 * by_hand.item(), rel_tol=1e-5)
    combined, plain_loss = TopKBCESpatialSoftmaxLoss(2, 4.0), TopKBCEHeatmapLoss(2, 4.0)
    annotated = torch.tensor([[False, True]])  # landmark 1 not annotated in this case: no cross-entropy left
    assert math.isclose(combined(logits, [seg, annotated]).item(), plain_loss(logits, [seg, annotated]).item(),
                        rel_tol=1e-6)


def test_spatial_softmax_loss_leaves_out_a_landmark_outside_the_patch_whose_cone_reaches_in():
    seg = torch.zeros(1, 1, 16, 16, 16)
    seg[0, 0, 0:3, 6:9, 6:9] = 1                   # (1, 7, 7): 3 voxels outside the central 8^3 (from 4 to 11)
    logits = torch.randn(1, 1, 8, 8, 8, generator=torch.Generator().manual_seed(1))
    assert heatmap_targets(seg, 1, 6.0)[0, 0, 4:12, 4:12, 4:12].sum() > 0   # its cone does reach in
    assert math.isclose(TopKBCESpatialSoftmaxLoss(1, 6.0)(logits, seg).item(),
                        TopKBCEHeatmapLoss(1, 6.0)(logits, seg).item(), rel_tol=1e-6)
    seg = torch.roll(seg, 5, dims=2)               # (6, 7, 7): inside, so the cross-entropy counts
    assert TopKBCESpatialSoftmaxLoss(1, 6.0)(logits, seg).item() > TopKBCEHeatmapLoss(1, 6.0)(logits, seg).item() + 1


def test_squared_distances_by_hand_with_a_per_axis_scale():
    sq = squared_distances(torch.tensor([[1.0, 2.0], [0.0, 0.0]]), (3, 4), scale=[1.0, 2.0])
    assert sq.shape == (2, 3, 4)
    assert sq[0, 1, 2].item() == 0
    assert math.isclose(sq[0, 0, 3].item(), 1 + 0.25, rel_tol=1e-6)      # one voxel off on each axis, axis 1 halved
    assert math.isclose(sq[1, 2, 3].item(), 4 + 9 / 4, rel_tol=1e-6)


def test_the_local_spatial_softmax_runs_within_the_cone_towards_a_sharper_cone():
    """The fine stage's term: mass a channel puts beyond its landmark's cone costs nothing in the cross-entropy (the
    BCE term still pushes it down); within the cone, the target is a cone of the local radius."""
    seg = torch.zeros(1, 1, 12, 12, 12)
    seg[0, 0, 4:7, 4:7, 4:7] = 1                                   # landmark at (5, 5, 5), cone radius 4
    logits = torch.randn(1, 1, 12, 12, 12, generator=torch.Generator().manual_seed(2))
    cone = heatmap_targets(seg, 1, 4.0)[0, 0] > 0
    distance = torch.linalg.norm(torch.stack(torch.meshgrid(*[torch.arange(12.0)] * 3, indexing="ij"), -1) - 5.0, dim=-1)
    sharp = (1 - distance / 1.2).clamp(min=0)                      # 1 at the landmark, 1/6 at its 6 neighbours
    assert sharp.sum().item() == pytest.approx(1 + 6 / 6)
    log_p = logits[0, 0][cone].log_softmax(0)
    by_hand = -(sharp[cone] * log_p).sum() / sharp.sum()
    plain = TopKBCEHeatmapLoss(1, 4.0, k_percent=100)
    local = TopKBCESpatialSoftmaxLoss(1, 4.0, k_percent=100, local_radius=1.2)
    assert math.isclose(local(logits, seg).item() - plain(logits, seg).item(), by_hand.item(), rel_tol=1e-5)
    far = logits.clone()
    far[0, 0, 11, 11, 11] = 50.0                                   # a look-alike 10 voxels away, outside the cone
    assert math.isclose(local(far, seg).item() - plain(far, seg).item(), by_hand.item(), rel_tol=1e-5)
    assert TopKBCESpatialSoftmaxLoss(1, 4.0, k_percent=100)(far, seg).item() - plain(far, seg).item() > 40
