"""Heatmap regression losses that take nnU-Net's augmented label patch as target (paper §2).

The target is the label patch (B, 1, *spatial), or ``[label patch, annotated]`` with ``annotated`` (B, N) bool: a
(sample, landmark) pair that is False was not annotated in that case and does not contribute (a landmark nobody
annotated must not be trained towards "nothing here"). nnU-Net's ``train_step`` moves both to the device.
"""
from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from nnlandmark.heatmaps import (Radius, centre_crop, edt_heatmaps, inside, instance_centres, instance_heatmaps,
                                 landmark_centres, nearest_instance, soft_argmax)

Target = Union[torch.Tensor, Sequence[torch.Tensor]]


def spatial_softmax_cross_entropy(logits: torch.Tensor, target: torch.Tensor):
    """(B, N) cross-entropy between each channel's softmax over all voxels and its target normalised to sum 1 (0 for
    a channel whose target is empty)."""
    log_p = logits.flatten(2).log_softmax(-1)
    return -(target.flatten(2) * log_p).sum(-1) / target.flatten(2).sum(-1).clamp(min=1e-12)


class TopKBCEHeatmapLoss(nn.Module):
    """BCE-with-logits against EDT heatmaps, keeping the highest ``k_percent`` % per (sample, channel)."""

    def __init__(self, num_landmarks: int, radius: float = 15.0, k_percent: float = 20.0,
                 instance_channels: Sequence[int] = (), instance_radius: Optional[Radius] = None):
        super().__init__()
        self.num_landmarks, self.radius, self.k_percent = num_landmarks, radius, k_percent
        self.instance_channels = list(instance_channels)   # multi-instance classes: their cones, max over instances
        self.instance_radius = radius if instance_radius is None else instance_radius   # one, or one per class

    def per_voxel(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits, target, reduction="none")

    def forward(self, logits: torch.Tensor, target: Target) -> torch.Tensor:
        """The label patch may be larger than ``logits`` (a margin around the patch): the heatmaps are built on all of
        it and then cropped to the centre, so landmarks just outside the patch still cast their cones into it."""
        seg, annotated = (target, None) if isinstance(target, torch.Tensor) else target
        centres, present = landmark_centres(seg, self.num_landmarks)   # a class's instances: not present here
        heat = edt_heatmaps(centres, present, seg.shape[2:], self.radius)
        offset = torch.tensor([(s - o) // 2 for s, o in zip(seg.shape[2:], logits.shape[2:])], device=centres.device)
        instances = None
        if self.instance_channels:
            instances = instance_centres(seg, self.num_landmarks, len(self.instance_channels))
            heat[:, self.instance_channels] = instance_heatmaps(*instances, seg.shape[2:], self.instance_radius)
            instances = (instances[0] - offset, instances[1])
        heat = centre_crop(heat, logits.shape[2:])
        return self.combine(logits, heat, centres - offset, present, annotated, instances)

    def per_channel(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """(B, N) loss: the mean of the highest ``k_percent`` % per-voxel losses of each (sample, channel)."""
        loss = self.per_voxel(logits, target).flatten(2)  # (B, N, V)
        if self.k_percent < 100:
            k = max(1, int(round(loss.shape[-1] * self.k_percent / 100)))
            loss = loss.topk(k, dim=-1, sorted=False).values
        return loss.mean(-1)

    @staticmethod
    def weighted_mean(per_pair: torch.Tensor, annotated: Optional[torch.Tensor],
                      weight: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Mean of a (B, N) loss over the (sample, landmark) pairs that count: annotated ones, times ``weight``."""
        if annotated is not None:
            annotated = annotated.to(per_pair.device, per_pair.dtype)
            weight = annotated if weight is None else weight * annotated
        if weight is None:
            return per_pair.mean()
        return (per_pair * weight).sum() / weight.sum().clamp(min=1)

    def combine(self, logits: torch.Tensor, heat: torch.Tensor, centres: torch.Tensor, present: torch.Tensor,
                annotated: Optional[torch.Tensor], instances=None) -> torch.Tensor:
        """The loss of a batch from its logits and heatmap targets; ``centres`` (B, N, D) and ``instances`` (the
        classes' ``instance_centres``) in the network's patch are for subclasses that add a coordinate term."""
        return self.weighted_mean(self.per_channel(logits.float(), heat.float()), annotated)


class WeightedTermLoss(TopKBCEHeatmapLoss):
    """BCE top-k plus ``weight`` x a (B, N) term of each channel against its landmark, averaged over the landmarks that
    lie inside the network's patch: one just outside casts part of its cone in, but the right place for its channel
    is not in the patch. Multi-instance classes have no one landmark (``present`` is False for them): a subclass
    with an ``instance_term`` adds one term per instance inside the patch to that average, else they get BCE only."""

    def __init__(self, num_landmarks: int, radius: float = 15.0, k_percent: float = 20.0, weight: float = 1.0,
                 instance_channels: Sequence[int] = (), instance_radius: Optional[Radius] = None):
        super().__init__(num_landmarks, radius, k_percent, instance_channels, instance_radius)
        self.weight = weight

    def term(self, logits: torch.Tensor, target: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def instance_term(self, logits: torch.Tensor, centres: torch.Tensor, present: torch.Tensor):
        """(B, C, K) term of each instance from the class channels' ``logits`` (B, C, *spatial); None: BCE only."""
        return None

    def combine(self, logits, heat, centres, present, annotated, instances=None) -> torch.Tensor:
        bce = super().combine(logits, heat, centres, present, annotated)
        per_pair = self.term(logits.float(), heat.float(), centres)
        counts = (present & inside(centres, logits.shape[2:])).float()
        per_instance = None if instances is None else \
            self.instance_term(logits[:, self.instance_channels].float(), *instances)
        if per_instance is not None:
            in_patch = (instances[1] & inside(instances[0], logits.shape[2:])).float()
            per_pair = torch.cat([per_pair, per_instance.flatten(1)], 1)
            counts = torch.cat([counts, in_patch.flatten(1)], 1)
            if annotated is not None:
                of_class = annotated[:, self.instance_channels, None].expand(in_patch.shape)
                annotated = torch.cat([annotated, of_class.flatten(1)], 1)
        return bce + self.weight * self.weighted_mean(per_pair, annotated, counts)


class TopKBCECoordinateLoss(WeightedTermLoss):
    """The term: distance (in heatmap radii) between each channel's soft-argmax and its landmark.

    Why: the heatmap loss only sees voxels; early in training 30 channels can all fire on the same structure. The
    coordinate term pulls each channel's whole mass towards its own landmark from anywhere in the patch, which is
    what makes whole-volume spatial-softmax models learn many landmarks in minutes.
    """

    def term(self, logits, target, centres):
        return torch.linalg.norm(soft_argmax(logits) - centres, dim=-1) / self.radius


class TopKBCESpatialSoftmaxLoss(WeightedTermLoss):
    """The term: cross-entropy between each channel's softmax over the patch and its cone normalised to sum 1.

    Why: BCE judges every voxel of every channel on its own, and with 32 landmarks in a whole volume the channels
    answer "a little, near the mean position" for a long time. The spatial softmax makes the voxels of a channel
    compete: each voxel's gradient says how much of the channel's mass lies off its cone, from anywhere in the
    patch. It has no absolute level (adding a constant to a channel's logits changes nothing), so the BCE term
    stays: it keeps the sigmoid output a heatmap in [0, 1] that the predictor, its sub-voxel refinement and the
    presence thresholds read.

    ``local_radius`` > 0: the softmax runs over each landmark's cone only, and its target is a sharper cone of this
    radius. That teaches where in its neighbourhood a landmark lies, not which of its look-alikes further away it is:
    what a fine stage needs, whose search is confined to a ball around a coarse model's landmark at prediction. (The
    wide cone normalised over its own voxels is nearly uniform: it would teach next to nothing.)
    """

    def __init__(self, num_landmarks: int, radius: float = 15.0, k_percent: float = 20.0, weight: float = 1.0,
                 local_radius: float = 0.0, instance_channels: Sequence[int] = (),
                 instance_radius: Optional[Radius] = None):
        super().__init__(num_landmarks, radius, k_percent, weight, instance_channels, instance_radius)
        self.local_radius = local_radius

    def term(self, logits, target, centres):
        if self.local_radius:
            logits = logits.masked_fill(target <= 0, -1e9)  # float32 here; a channel without cone: all equal, term 0
            target = edt_heatmaps(centres, torch.ones(centres.shape[:2], dtype=torch.bool, device=centres.device),
                                  logits.shape[2:], self.local_radius)
        return spatial_softmax_cross_entropy(logits, target)

    def instance_term(self, logits, centres, present):
        """Each instance is the one landmark of its channel within its cell, the voxels nearer to it than to any
        other instance of its class: the term above within that cell (a class with one instance: exactly the term
        of a landmark). Without it, a class learns from BCE alone, whose broad peaks place instances worse."""
        cells = nearest_instance(centres, present, logits.shape[2:])
        per_instance = []
        for k in range(present.shape[2]):
            cone = edt_heatmaps(centres[:, :, k], present[:, :, k], logits.shape[2:], self.instance_radius)
            cone.masked_fill_(cells != k, 0)
            per_instance.append(self.term(logits.masked_fill(cells != k, -1e9), cone, centres[:, :, k]))
        return torch.stack(per_instance, 2) if per_instance else logits.new_zeros((*present.shape[:2], 0))


class MSEHeatmapLoss(TopKBCEHeatmapLoss):
    """Ablation: mean squared error between the sigmoid output and the heatmap, all voxels."""

    def __init__(self, num_landmarks: int, radius: float = 15.0, instance_channels: Sequence[int] = (),
                 instance_radius: Optional[Radius] = None):
        super().__init__(num_landmarks, radius, 100.0, instance_channels, instance_radius)

    def per_voxel(self, logits, target):
        return (torch.sigmoid(logits) - target) ** 2

