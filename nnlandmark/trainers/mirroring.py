"""Left/right mirroring for datasets with symmetric landmark pairs (dataset.json ``"mirror_pairs"``).

Mirroring an image along the patient's left-right axis turns a left eye into a right eye, which is why the paper
disables mirroring. With the pairs declared, the flip along that axis also swaps the paired labels (training) or
heatmap channels (test-time mirroring), so the augmentation stays anatomically correct.
"""
from typing import Dict, Iterable, Sequence, Tuple

import torch
from batchgeneratorsv2.transforms.spatial.mirroring import MirrorTransform

from nnlandmark.errors import LandmarkError
from nnlandmark.geometry import Geometry, preprocessed_left_right_axis
from nnlandmark.landmark_set import MIRROR_PAIRS_KEY

def dataset_left_right_axis(case_properties: Iterable[dict], transpose_forward: Sequence[int]) -> int:
    """The preprocessed array axis along the patient's left-right in every case (nnU-Net's case properties), or a
    LandmarkError when the cases disagree."""
    axes = {preprocessed_left_right_axis(Geometry.of_sitk_stuff(p['sitk_stuff']), transpose_forward)
            for p in case_properties}
    if len(axes) != 1:
        raise LandmarkError(f"'{MIRROR_PAIRS_KEY}' needs every training image in the same orientation, but the "
                            f"left-right axis differs between cases (preprocessed axes {sorted(axes)}); reorient the "
                            f"images")
    return axes.pop()


class PairSwappingMirrorTransform(MirrorTransform):
    """nnU-Net's random mirroring; a flip along ``left_right_axis`` also swaps the paired landmark labels."""

    def __init__(self, allowed_axes: Tuple[int, ...], left_right_axis: int, swap: Dict[int, int]):
        super().__init__(allowed_axes)
        self.left_right_axis = left_right_axis
        self.lookup = torch.arange(max([0, *swap, *swap.values()]) + 1)
        for a, b in swap.items():
            self.lookup[a] = b

    def _apply_to_segmentation(self, segmentation: torch.Tensor, **params) -> torch.Tensor:
        flipped = super()._apply_to_segmentation(segmentation, **params)
        if self.left_right_axis not in params["axes"]:
            return flipped
        swapped = flipped.clone()
        inside = (flipped > 0) & (flipped < len(self.lookup))
        swapped[inside] = self.lookup[flipped[inside].long()].to(flipped.dtype)
        return swapped
