"""Per-channel heatmap maxima, refined to sub-voxel positions in preprocessed space."""
import itertools

import numpy as np
import torch

REFINE_RADIUS = 3     # voxels around the integer maximum that may contribute
REFINE_DROP = 0.15    # voxels more than this below the maximum get no weight


def channel_maxima(heat: torch.Tensor):
    """(N, *spatial) -> integer peak positions (N, D) as numpy and the maxima (N,)."""
    values, flat_index = heat.flatten(1).max(dim=1)  # in the stack's own dtype: no float32 copy of it
    peaks = np.stack(np.unravel_index(flat_index.numpy(), heat.shape[1:]), -1)
    return peaks, values.float().numpy()


def restrict_to_balls(heat: torch.Tensor, centres: np.ndarray, radius_voxels: np.ndarray) -> list:
    """Set each channel's heatmap to -1 outside an ellipsoid (a ball in mm) around its prior position, in place.

    ``centres`` (N, D) in the stack's voxels, NaN rows leave the channel unrestricted; ``radius_voxels`` (D,) is the
    radius along each axis. Used by a coarse-to-fine cascade: the fine model's maximum is read only near the
    coarse model's landmark, so channels that fire on look-alike structures elsewhere do no harm. Returns the
    channels left unrestricted because their ball holds no voxel of the volume.
    """
    outside = []
    for channel, centre in enumerate(centres):
        if np.isnan(centre).any():
            continue
        sq = 0
        for axis, size in enumerate(heat.shape[1:]):
            d = ((torch.arange(size, dtype=torch.float32) - float(centre[axis])) / float(radius_voxels[axis])) ** 2
            view = [1] * (heat.ndim - 1)
            view[axis] = size
            sq = sq + d.reshape(view)
        if bool((sq <= 1).any()):
            heat[channel].masked_fill_(sq > 1, -1)
        else:
            outside.append(channel)
    return outside


def refine_peaks(heat: torch.Tensor, peaks: np.ndarray, radius: int = REFINE_RADIUS,
                 drop: float = REFINE_DROP) -> np.ndarray:
    """Weighted centroid of ``max(h - (h_peak - drop), 0)`` in a (2r+1)^D window around each peak.

    The centre of a symmetric peak or plateau, not its first voxel: beats the integer argmax floor of
    about 0.48 voxel mean error for uniformly distributed true positions. One gather of N windows straight from
    the (fp16) stack, no copy of it and no loop over channels; voxels outside the volume count as 0.
    """
    n, dims = heat.shape[0], heat.ndim - 1
    offsets = np.array(list(itertools.product(range(-radius, radius + 1), repeat=dims)))  # (K, D)
    positions = peaks[:, None, :] + offsets[None]                                          # (N, K, D)
    shape = np.array(heat.shape[1:])
    inside = torch.from_numpy(np.all((positions >= 0) & (positions < shape), -1))
    clipped = np.clip(positions, 0, shape - 1)
    index = (torch.arange(n)[:, None], *[torch.from_numpy(clipped[..., d]) for d in range(dims)])
    window = heat[index].float() * inside                                                   # (N, K)
    peak_values = window[:, len(offsets) // 2:len(offsets) // 2 + 1]
    weights = (window - (peak_values - drop)).clamp(min=0).numpy()
    return (weights[..., None] * positions).sum(1) / weights.sum(1, keepdims=True)
