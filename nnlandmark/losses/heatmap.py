"""Label patch -> per-landmark centre of mass -> linear EDT heatmap, vectorised on the training device."""
import torch


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


def edt_heatmaps(centres: torch.Tensor, present: torch.Tensor, spatial_shape, radius: float) -> torch.Tensor:
    """(B, N, *spatial) heatmaps: 1 at the centre, linearly to 0 at ``radius`` voxels, 0 outside/absent.
    Everything after the squared distances works in place on one output tensor."""
    heat = squared_distances(centres, spatial_shape).sqrt_().mul_(-1 / radius).add_(1).clamp_(min=0)
    return heat.mul_(present.to(heat.dtype).reshape(*present.shape, *([1] * len(spatial_shape))))


def heatmap_targets(seg: torch.Tensor, num_landmarks: int, radius: float) -> torch.Tensor:
    """Label patch (B, 1, *spatial) -> heatmap targets (B, N, *spatial)."""
    centres, present = landmark_centres(seg, num_landmarks)
    return edt_heatmaps(centres, present, seg.shape[2:], radius)


def soft_argmax(logits: torch.Tensor) -> torch.Tensor:
    """(B, N, *spatial) logits -> (B, N, D) expected voxel position under each channel's spatial softmax."""
    return logits.flatten(2).float().softmax(-1) @ voxel_coordinates(logits.shape[2:], logits.device)


def spatial_softmax_cross_entropy(logits: torch.Tensor, target: torch.Tensor):
    """(B, N) cross-entropy between each channel's softmax over all voxels and its target normalised to sum 1 (0 for
    a channel whose target is empty)."""
    log_p = logits.flatten(2).log_softmax(-1)
    return -(target.flatten(2) * log_p).sum(-1) / target.flatten(2).sum(-1).clamp(min=1e-12)


def centre_crop(x: torch.Tensor, spatial_shape) -> torch.Tensor:
    """The central ``spatial_shape`` of a (B, C, *spatial) tensor (a view)."""
    slices = [slice((size - want) // 2, (size - want) // 2 + want) for size, want in zip(x.shape[2:], spatial_shape)]
    return x[(slice(None), slice(None), *slices)]
