"""Heatmap regression losses that take nnU-Net's augmented label patch as target (paper §2)."""
import torch
import torch.nn.functional as F
from torch import nn

from nnlandmark.losses.heatmap import heatmap_targets


class TopKBCEHeatmapLoss(nn.Module):
    """BCE-with-logits against EDT heatmaps, keeping the highest ``k_percent`` % per (sample, channel)."""

    def __init__(self, num_landmarks: int, radius: float = 15.0, k_percent: float = 20.0):
        super().__init__()
        self.num_landmarks, self.radius, self.k_percent = num_landmarks, radius, k_percent

    def per_voxel(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits, target, reduction="none")

    def forward(self, logits: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        target = heatmap_targets(seg, self.num_landmarks, self.radius).to(logits.dtype)
        loss = self.per_voxel(logits.float(), target.float()).flatten(2)  # (B, N, V)
        if self.k_percent >= 100:
            return loss.mean()
        k = max(1, int(round(loss.shape[-1] * self.k_percent / 100)))
        return loss.topk(k, dim=-1, sorted=False).values.mean()


class MSEHeatmapLoss(TopKBCEHeatmapLoss):
    """Ablation: mean squared error between the sigmoid output and the heatmap, all voxels."""

    def __init__(self, num_landmarks: int, radius: float = 15.0):
        super().__init__(num_landmarks, radius, k_percent=100.0)

    def per_voxel(self, logits, target):
        return (torch.sigmoid(logits) - target) ** 2
