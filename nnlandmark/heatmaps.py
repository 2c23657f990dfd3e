"""Heatmaps in torch: targets (label patch -> per-landmark centre of mass -> linear EDT cone) and decoding (channel
maxima, sub-voxel refinement, search balls), shared by the losses, the trainer's validation and the predictor.

Positions here are in the tensor's own axis order (preprocessed numpy order); geometry.py maps them elsewhere.
"""
import itertools
import math
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch

from nnlandmark.landmark_set import MAX_INSTANCES

REFINE_RADIUS = 8     # voxels around the integer maximum that may contribute: a trained landmark's top spans several
REFINE_DROP = 0.15    # voxels more than this below the maximum get no weight
REFINE_TOP = 125      # nor those below the highest 125 (a 5^3 cube's worth; pixels in 2D): a broad dome's top
INSTANCE_REFINE_RADIUS = 3   # an instance's window stays clear of its neighbours' tops (its cone is half their gap)
Radius = Union[float, Sequence[float]]   # a cone radius in voxels: one, or one per channel


def voxel_coordinates(spatial, device) -> torch.Tensor:
    """(V, D) float positions of every voxel of a patch, in the order of ``tensor.flatten()``."""
    grids = torch.meshgrid(*[torch.arange(s, device=device, dtype=torch.float32) for s in spatial], indexing="ij")
    return torch.stack([g.reshape(-1) for g in grids], dim=-1)


def landmark_centres(seg: torch.Tensor, num_landmarks: int):
    """Centre of mass of each label 1..N in a (B, 1, *spatial) label patch.

    Returns ``centres`` (B, N, D) in voxel units of the patch (axis order of the tensor) and
    ``present`` (B, N) bool. One scatter_add over the flattened patch, no loop over labels or samples.
    """
    b = seg.shape[0]
    spatial = seg.shape[2:]
    labels = seg.reshape(b, -1).long().clamp(min=0, max=num_landmarks + 1)  # out-of-range -> overflow bin
    coords = voxel_coordinates(spatial, seg.device)  # (V, D)
    ones = torch.ones_like(labels, dtype=torch.float32)
    counts = torch.zeros(b, num_landmarks + 2, device=seg.device).scatter_add_(1, labels, ones)
    sums = torch.zeros(b, num_landmarks + 2, len(spatial), device=seg.device)
    sums.scatter_add_(1, labels[..., None].expand(-1, -1, len(spatial)), coords.expand(b, -1, -1))
    counts, sums = counts[:, 1:num_landmarks + 1], sums[:, 1:num_landmarks + 1]
    present = counts > 0
    centres = sums / counts.clamp(min=1)[..., None]
    return centres, present


def squared_distances(centres: torch.Tensor, spatial_shape, scale=None) -> torch.Tensor:
    """(..., *spatial) squared distance from every voxel to each (..., D) centre, axis ``a`` measured in units of
    ``scale[a]`` voxels (default 1). A broadcast sum of per-axis terms: no (V, D) grid of voxel positions."""
    lead = centres.shape[:-1]
    sq = 0
    for axis, size in enumerate(spatial_shape):
        diff = torch.arange(size, device=centres.device, dtype=centres.dtype) - centres[..., axis, None]
        if scale is not None:
            diff = diff / float(scale[axis])
        view = [*lead] + [1] * len(spatial_shape)
        view[len(lead) + axis] = size
        sq = sq + (diff ** 2).reshape(view)
    return sq


def edt_heatmaps(centres: torch.Tensor, present: torch.Tensor, spatial_shape, radius: Radius) -> torch.Tensor:
    """(B, N, *spatial) heatmaps: 1 at the centre, linearly to 0 at ``radius`` voxels (one, or one per channel),
    0 outside/absent. Everything after the squared distances works in place on one output tensor."""
    slope = -1 / torch.as_tensor(radius, dtype=centres.dtype, device=centres.device)
    heat = squared_distances(centres, spatial_shape).sqrt_().mul_(slope.reshape(-1, *([1] * len(spatial_shape))))
    heat.add_(1).clamp_(min=0)
    return heat.mul_(present.to(heat.dtype).reshape(*present.shape, *([1] * len(spatial_shape))))


def heatmap_targets(seg: torch.Tensor, num_landmarks: int, radius: float,
                    instance_channels: Sequence[int] = (), instance_radius: Optional[Radius] = None) -> torch.Tensor:
    """Label patch (B, 1, *spatial) -> heatmap targets (B, N, *spatial); the ``instance_channels`` (those of the
    multi-instance classes, in class order) hold the cones of their instances (``instance_label``), of
    ``instance_radius`` (one, or one per class; default ``radius``)."""
    centres, present = landmark_centres(seg, num_landmarks)
    heat = edt_heatmaps(centres, present, seg.shape[2:], radius)
    if instance_channels:
        heat[:, list(instance_channels)] = instance_heatmaps(
            *instance_centres(seg, num_landmarks, len(instance_channels)), seg.shape[2:],
            radius if instance_radius is None else instance_radius)
    return heat


def instance_label(num_landmarks: int, class_index: int, instance: int) -> int:
    """The label value that the training patch gives instance ``instance`` (0-based) of the ``class_index``-th
    multi-instance class (trainers.instances), above the landmark labels 1..N: a slot of its own, so that
    ``landmark_centres`` finds each instance's centre as it finds a landmark's."""
    return num_landmarks + 1 + class_index * MAX_INSTANCES + instance


def instance_centres(seg: torch.Tensor, num_landmarks: int, num_classes: int):
    """Each multi-instance class's instances in a label patch whose instances carry ``instance_label`` values:
    ``centres`` (B, num_classes, K, D) and ``present`` (B, num_classes, K), K the most any class has in a sample
    (slots fill from 0 on)."""
    b, dims = seg.shape[0], seg.ndim - 2
    centres, present = landmark_centres(seg, num_landmarks + num_classes * MAX_INSTANCES)
    centres = centres[:, num_landmarks:].reshape(b, num_classes, MAX_INSTANCES, dims)
    present = present[:, num_landmarks:].reshape(b, num_classes, MAX_INSTANCES)
    k = int(present.sum(-1).max()) if present.numel() else 0
    return centres[:, :, :k], present[:, :, :k]


def instance_heatmaps(centres: torch.Tensor, present: torch.Tensor, spatial, radius: Radius) -> torch.Tensor:
    """(B, C, *spatial): each class's cones (``radius``: one, or one per class), the maximum over its instances
    (``instance_centres``); 0 without any."""
    heat = torch.zeros(*present.shape[:2], *spatial, device=centres.device)
    for k in range(present.shape[2]):
        torch.maximum(heat, edt_heatmaps(centres[:, :, k], present[:, :, k], spatial, radius), out=heat)
    return heat


def nearest_instance(centres: torch.Tensor, present: torch.Tensor, spatial) -> torch.Tensor:
    """(B, C, *spatial) long: the index of the instance of its class each voxel lies nearest to (0 where a class has
    none): the cell in which that instance is the one landmark of its channel."""
    nearest = torch.full((*present.shape[:2], *spatial), float("inf"), device=centres.device)
    owner = torch.zeros(nearest.shape, dtype=torch.long, device=centres.device)
    for k in range(present.shape[2]):
        distance = squared_distances(centres[:, :, k], spatial)
        distance.masked_fill_(~present[:, :, k].reshape(*present.shape[:2], *([1] * len(spatial))), float("inf"))
        closer = distance < nearest
        nearest = torch.where(closer, distance, nearest)
        owner.masked_fill_(closer, k)
    return owner


def soft_argmax(logits: torch.Tensor) -> torch.Tensor:
    """(B, N, *spatial) logits -> (B, N, D) expected voxel position under each channel's spatial softmax."""
    return logits.flatten(2).float().softmax(-1) @ voxel_coordinates(logits.shape[2:], logits.device)


def centre_crop(x: torch.Tensor, spatial_shape) -> torch.Tensor:
    """The central ``spatial_shape`` of a (B, C, *spatial) tensor (a view)."""
    slices = [slice((size - want) // 2, (size - want) // 2 + want) for size, want in zip(x.shape[2:], spatial_shape)]
    return x[(slice(None), slice(None), *slices)]


def inside(centres: torch.Tensor, spatial_shape) -> torch.Tensor:
    """(B, N) bool: the (B, N, D) voxel positions lie within a patch of ``spatial_shape``."""
    return ((centres >= 0) & (centres <= torch.tensor(spatial_shape, device=centres.device) - 1)).all(-1)


def channel_maxima(heat: torch.Tensor):
    """(N, *spatial) -> integer peak positions (N, D) as numpy and the maxima (N,)."""
    values, flat_index = heat.flatten(1).max(dim=1)  # in the stack's own dtype: no float32 copy of it
    peaks = np.stack(np.unravel_index(flat_index.numpy(), heat.shape[1:]), -1)
    return peaks, values.float().numpy()


def restrict_to_balls(heat: torch.Tensor, centres: np.ndarray, radius_voxels: np.ndarray) -> list:
    """Set each channel's heatmap to -1 outside an ellipsoid (a ball in mm) around its prior position, in place.

    ``centres`` (N, D) in the stack's voxels, NaN rows leave the channel unrestricted; ``radius_voxels`` (D,) or
    (N, D) is the radius along each axis (per channel). Used by a coarse-to-fine cascade: the fine model's maximum is
    read only near the coarse model's landmark, so channels that fire on look-alike structures elsewhere do no harm.
    Returns the channels left unrestricted because their ball holds no voxel of the volume.
    """
    searchable = balls_inside(centres, radius_voxels, heat.shape[1:])
    radii = np.broadcast_to(radius_voxels, centres.shape)
    for channel, centre in enumerate(centres):
        if not searchable[channel]:
            continue
        sq = squared_distances(torch.tensor(centre, dtype=torch.float32), heat.shape[1:], radii[channel])
        heat[channel].masked_fill_(sq > 1, -1)
    return [c for c in range(len(centres)) if not searchable[c] and not np.isnan(centres[c]).any()]


def balls_inside(centres: np.ndarray, radius_voxels: np.ndarray, shape) -> np.ndarray:
    """(N,) bool: the ellipsoid holds at least one voxel of the volume (NaN centre: False). The voxel nearest to the
    centre in the ellipsoid's metric is the centre rounded and clipped into the volume, axis by axis."""
    with np.errstate(invalid='ignore'):
        nearest = np.clip(np.round(centres), 0, np.asarray(shape) - 1)
        return (((nearest - centres) / radius_voxels) ** 2).sum(1) <= 1


def tiles_near_balls(slicers: list, centres: np.ndarray, radius_voxels: np.ndarray, shape) -> list:
    """The sliding-window tiles (nnU-Net slicers) that overlap some ball's bounding box: all that a search around
    priors reads, since every tile covering a voxel of a ball is kept, so the heatmap inside the balls is unchanged.
    All tiles when some channel has no ball in the volume (it is searched everywhere). So a voxel no kept tile covers
    lies outside every ball, and ``restrict_to_balls`` overwrites it (the heatmap there is 0/0 = NaN until then).
    A 2d configuration's tiles index their slice with an integer."""
    if not balls_inside(centres, radius_voxels, shape).all():
        return slicers
    low, high = centres - radius_voxels, centres + radius_voxels
    kept = []
    for tile in slicers:
        start = np.array([s.start if isinstance(s, slice) else s for s in tile[1:]])
        stop = np.array([s.stop if isinstance(s, slice) else s + 1 for s in tile[1:]])
        if ((start <= high) & (stop - 1 >= low)).all(1).any():
            kept.append(tile)
    return kept


def refine_peaks(heat: torch.Tensor, peaks: np.ndarray, radius: int = REFINE_RADIUS,
                 drop: float = REFINE_DROP) -> np.ndarray:
    """Weighted centroid of the top of each peak in a (2r+1)^D window around it: ``h - floor`` over the voxels above
    the floor, which is ``drop`` below the peak, or higher where more than REFINE_TOP voxels lie within ``drop``
    (then just below the highest REFINE_TOP of them).

    The centre of a symmetric peak or plateau, not its first voxel: beats the integer argmax floor of about 0.48 voxel
    mean error for uniformly distributed true positions. A trained landmark's top can be a broad dome, lopsided on its
    flanks: there only its highest voxels count. One gather of N windows straight from the (fp16) stack, no copy of it
    and no loop over channels; voxels outside the volume count as 0.
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
    top = min(REFINE_TOP, len(offsets) - 1)
    below_top = window.topk(top + 1, dim=1).values[:, -1:]          # the highest voxel not among the top ones
    floor = torch.maximum(peak_values - drop, torch.minimum(below_top, peak_values - 1e-4))   # (ties: all count)
    weights = (window - floor).clamp(min=0).numpy()
    return (weights[..., None] * positions).sum(1) / weights.sum(1, keepdims=True)


def peak_shape(heat: torch.Tensor, peaks: np.ndarray, spacing) -> Tuple[np.ndarray, np.ndarray]:
    """How clear each channel's maximum is, from the heatmaps alone (the features of the calibrated error estimate):
    ``half_max_radius_mm`` (N,), the radius of a ball (a disc in 2D) as large as the voxels at or above half the
    channel's maximum (a broad or split response is uncertain), and ``second_peak`` (N,), the channel's highest value
    farther than twice that radius from its integer maximum ``peaks`` (N, D), relative to the maximum (a look-alike
    elsewhere); 0 where nothing is that far. Voxels outside search balls (-1) count for neither."""
    spacing = np.asarray(spacing, float)
    radius_mm, second = np.zeros(len(peaks)), np.zeros(len(peaks))
    extent = np.array(heat.shape[1:]) > 1   # a 2D image's heatmap has a slice axis of one
    for channel, peak in enumerate(peaks):   # one channel at a time: no second copy of the whole stack
        values = heat[channel]
        maximum = float(values[tuple(int(p) for p in peak)])
        count = int((values >= max(maximum / 2, 1e-6)).sum())
        radius_mm[channel] = ball_radius(count * np.prod(spacing[extent]), int(extent.sum()))
        exclusion_voxels = np.maximum(2 * radius_mm[channel] / spacing, 1.0)
        outside = values[squared_distances(torch.tensor(peak, dtype=torch.float32), values.shape,
                                           exclusion_voxels) > 1]
        if outside.numel() and maximum > 0:
            second[channel] = max(float(outside.max()) / maximum, 0.0)
    return radius_mm, second


def ball_radius(size: float, dims: int) -> float:
    """The radius of a ball of ``dims`` dimensions whose volume (area in 2D) is ``size``."""
    return (size * math.gamma(dims / 2 + 1) / np.pi ** (dims / 2)) ** (1 / dims)


def patch_landmark_errors(logits: torch.Tensor, seg: torch.Tensor, num_landmarks: int,
                          within: Optional[float] = None):
    """Per-landmark sum and count of voxel distances between each channel's maximum and the target centre,
    over the landmarks present in the patches. ``within``: the maximum within that many voxels of the centre (a fine
    stage's model is read within a ball around a coarse landmark)."""
    centres, present = landmark_centres(seg, num_landmarks)
    spatial = logits.shape[2:]
    if within is not None:
        logits = logits.masked_fill(squared_distances(centres, spatial) > within ** 2, float('-inf'))
    flat_argmax = logits.flatten(2).argmax(-1)  # (B, N)
    peaks = torch.stack(torch.unravel_index(flat_argmax, spatial), -1).float()
    distances = torch.linalg.norm(peaks - centres, dim=-1) * present
    return distances.sum(0), present.sum(0)


def instance_peaks(channel: torch.Tensor, floor: float, limit: int = 8 * MAX_INSTANCES
                   ) -> Tuple[np.ndarray, np.ndarray]:
    """A multi-instance class's candidate peaks, strongest first: integer positions (K, D) and values (K,) of the
    voxels that are the maximum of their 3^D neighbourhood and at least ``floor``, at most ``limit`` (a plateau is
    many equal maxima). Non-maximum suppression (``suppressed``) comes after their sub-voxel refinement, which moves
    two maxima of one broad peak towards each other."""
    values = channel.float()
    pool = torch.nn.functional.max_pool3d if values.ndim == 3 else torch.nn.functional.max_pool2d
    local = (values >= pool(values[None], 3, stride=1, padding=1)[0]) & (values >= floor)
    positions = torch.nonzero(local)
    heights = values[tuple(positions.T)]
    order = torch.argsort(heights, descending=True)[:limit]
    return positions[order].numpy().reshape(-1, values.ndim), heights[order].numpy()


def suppressed(points: np.ndarray, likelihoods: np.ndarray, nms_mm: float) -> np.ndarray:
    """Indices of the points greedy non-maximum suppression keeps at ``nms_mm``, strongest first."""
    kept = []
    for i in np.argsort(-likelihoods, kind="stable"):
        if not kept or np.min(np.linalg.norm(points[kept] - points[i], axis=1)) > nms_mm:
            kept.append(i)
    return np.asarray(kept, int)
