"""Left/right mirroring for datasets with symmetric landmark pairs (dataset.json ``"mirror_pairs"``).

Mirroring an image along the patient's left-right axis turns a left eye into a right eye, which is why the paper
disables mirroring. With the pairs declared, the flip along that axis also swaps the paired labels (training) or
heatmap channels (test-time mirroring), so the augmentation stays anatomically correct.
"""
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch
from batchgeneratorsv2.transforms.spatial.mirroring import MirrorTransform

from nnlandmark.errors import LandmarkError

DATASET_KEY = "mirror_pairs"


def mirror_pairs(dataset_json: dict) -> List[Tuple[str, str]]:
    """Validated ``[[left, right], ...]`` from dataset.json; [] when the dataset declares none."""
    pairs = dataset_json.get(DATASET_KEY, [])
    labels = {n for n, v in dataset_json["labels"].items() if int(v) != 0}
    seen = set()
    for pair in pairs if isinstance(pairs, list) else [pairs]:
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and pair[0] != pair[1]
                and all(isinstance(n, str) and n in labels for n in pair)):
            raise LandmarkError(f"dataset.json '{DATASET_KEY}': {pair!r} is not a pair of two different landmark "
                                f"names")
        if seen & set(pair):
            raise LandmarkError(f"dataset.json '{DATASET_KEY}': landmark '{(seen & set(pair)).pop()}' is in two pairs")
        seen |= set(pair)
    return [tuple(p) for p in pairs]


def label_swap(dataset_json: dict) -> Dict[int, int]:
    """Label value -> the value of its mirror partner (both directions)."""
    labels = {n: int(v) for n, v in dataset_json["labels"].items()}
    swap = {}
    for a, b in mirror_pairs(dataset_json):
        swap[labels[a]], swap[labels[b]] = labels[b], labels[a]
    return swap


def channel_permutation(dataset_json: dict) -> List[int]:
    """Output channel c (label c + 1) -> the channel of its mirror partner (itself when unpaired)."""
    n = sum(1 for v in dataset_json["labels"].values() if int(v) != 0)
    swap = label_swap(dataset_json)
    return [swap.get(c + 1, c + 1) - 1 for c in range(n)]


def left_right_axis(directions: Sequence, transpose_forward: Sequence[int]) -> int:
    """The preprocessed array axis that runs along the patient's left-right (world LPS x) in every case.

    ``directions`` are the cases' ITK direction matrices (ITK index axis i has world direction column i); numpy
    axis a of the original array is ITK axis 2 - a, and preprocessed axis p is original axis transpose_forward[p].
    """
    axes = set()
    for direction in directions:
        itk_axis = int(np.argmax(np.abs(np.asarray(direction, float).reshape(3, 3)[0])))
        axes.add(list(transpose_forward).index(2 - itk_axis))
    if len(axes) != 1:
        raise LandmarkError(f"'{DATASET_KEY}' needs every training image in the same orientation, but the left-right "
                            f"axis differs between cases (preprocessed axes {sorted(axes)}); reorient the images")
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
