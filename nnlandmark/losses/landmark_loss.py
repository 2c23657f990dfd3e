"""Heatmap regression losses that take nnU-Net's augmented label patch as target (paper §2)."""
from contextlib import contextmanager
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from nnlandmark.losses.heatmap import centre_crop, edt_heatmaps, landmark_centres, soft_argmax


class TopKBCEHeatmapLoss(nn.Module):
    """BCE-with-logits against EDT heatmaps, keeping the highest ``k_percent`` % per (sample, channel)."""

    def __init__(self, num_landmarks: int, radius: float = 15.0, k_percent: float = 20.0):
        super().__init__()
        self.num_landmarks, self.radius, self.k_percent = num_landmarks, radius, k_percent
        self.annotated: Optional[torch.Tensor] = None  # (B, N) bool while a batch with unannotated landmarks runs

    @contextmanager
    def annotated_only(self, annotated: Optional[torch.Tensor]):
        """Within the block, (sample, landmark) pairs that are False do not contribute: a landmark nobody annotated
        in a case must not be trained towards 'nothing here'. nnU-Net calls ``loss(output, target)`` with two
        arguments, so the mask travels this way."""
        self.annotated = annotated
        try:
            yield
        finally:
            self.annotated = None

    def per_voxel(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits, target, reduction="none")

    def forward(self, logits: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        """``seg`` may be larger than ``logits`` (a margin around the patch): the heatmaps are built on all of it and
        then cropped to the centre, so landmarks just outside the patch still cast their cones into it."""
        centres, present = landmark_centres(seg, self.num_landmarks)
        target = centre_crop(edt_heatmaps(centres, present, seg.shape[2:], self.radius), logits.shape[2:])
        loss = self.per_voxel(logits.float(), target.float()).flatten(2)  # (B, N, V)
        if self.k_percent < 100:
            k = max(1, int(round(loss.shape[-1] * self.k_percent / 100)))
            loss = loss.topk(k, dim=-1, sorted=False).values
        offset = torch.tensor([(s - o) // 2 for s, o in zip(seg.shape[2:], logits.shape[2:])], device=centres.device)
        return self.combine(logits, loss.mean(-1), centres - offset, present)

    def weighted_mean(self, per_pair: torch.Tensor, weight: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Mean of a (B, N) loss over the (sample, landmark) pairs that count: annotated ones, times ``weight``."""
        if self.annotated is not None:
            annotated = self.annotated.to(per_pair.device, per_pair.dtype)
            weight = annotated if weight is None else weight * annotated
        if weight is None:
            return per_pair.mean()
        return (per_pair * weight).sum() / weight.sum().clamp(min=1)

    def combine(self, logits: torch.Tensor, per_channel: torch.Tensor, centres: torch.Tensor,
                present: torch.Tensor) -> torch.Tensor:
        """The loss from the per-(sample, channel) heatmap loss; ``centres`` (B, N, D) in the network's patch."""
        return self.weighted_mean(per_channel)


class TopKBCECoordinateLoss(TopKBCEHeatmapLoss):
    """BCE top-k plus ``weight`` x the distance (in heatmap radii) between each channel's soft-argmax and its landmark.

    Why: the heatmap loss only sees voxels; early in training 30 channels can all fire on the same structure. The
    coordinate term pulls each channel's whole mass towards its own landmark from anywhere in the patch, which is
    what makes whole-volume spatial-softmax models learn many landmarks in minutes.
    """

    def __init__(self, num_landmarks: int, radius: float = 15.0, k_percent: float = 20.0, weight: float = 1.0):
        super().__init__(num_landmarks, radius, k_percent)
        self.weight = weight

    def combine(self, logits, per_channel, centres, present) -> torch.Tensor:
        inside = ((centres >= 0) & (centres <= torch.tensor(logits.shape[2:], device=centres.device) - 1)).all(-1)
        distance = torch.linalg.norm(soft_argmax(logits) - centres, dim=-1) / self.radius  # (B, N)
        return self.weighted_mean(per_channel) + self.weight * self.weighted_mean(distance, (present & inside).float())


class MSEHeatmapLoss(TopKBCEHeatmapLoss):
    """Ablation: mean squared error between the sigmoid output and the heatmap, all voxels."""

    def __init__(self, num_landmarks: int, radius: float = 15.0):
        super().__init__(num_landmarks, radius, k_percent=100.0)

    def per_voxel(self, logits, target):
        return (torch.sigmoid(logits) - target) ** 2
