"""Multi-instance classes in training (dataset.json ``"multi_instance"``): every instance of a class shares the
class's label value in the label map, so the training patch tells them apart as connected components, after the
spatial augmentation (which moves and reshapes them) and before the loss builds its targets."""
from typing import Sequence

import numpy as np
import torch
from batchgeneratorsv2.transforms.base.basic_transform import BasicTransform
from scipy import ndimage

from nnlandmark.heatmaps import instance_label
from nnlandmark.landmark_set import MAX_INSTANCES


class InstanceLabelTransform(BasicTransform):
    """Gives each (26-)connected blob of a multi-instance class's label its own ``heatmaps.instance_label`` value (the
    class's value disappears from the patch), in the CPU data loader's workers; blobs beyond ``MAX_INSTANCES`` in one
    patch stay unlabelled (0)."""

    def __init__(self, num_landmarks: int, class_labels: Sequence[int]):
        super().__init__()
        self.num_landmarks, self.class_labels = num_landmarks, list(class_labels)

    def apply(self, data_dict: dict, **params) -> dict:
        seg = data_dict['segmentation']
        labels = seg.numpy().astype(np.int16)
        relabelled = labels.copy()
        for class_index, value in enumerate(self.class_labels):
            mask = labels == value
            relabelled[mask] = 0
            components, count = ndimage.label(mask[0], structure=np.ones((3,) * (mask.ndim - 1)))
            for k in range(min(count, MAX_INSTANCES)):
                relabelled[0][components == k + 1] = instance_label(self.num_landmarks, class_index, k)
        data_dict['segmentation'] = torch.from_numpy(relabelled)
        return data_dict
