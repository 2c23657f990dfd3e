"""Landmarks <-> nnU-Net label maps with one 3x3x3 cube per landmark (paper §2)."""
from typing import Dict, Mapping

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from nnlandmark.errors import LandmarkError
from nnlandmark.geometry import numpy_to_itk_index

CUBE_HALF_WIDTH = 1  # 3x3x3 cubes


def landmarks_to_labelmap(reference: sitk.Image, landmarks_index: Mapping[str, np.ndarray],
                          labels: Mapping[str, int]) -> sitk.Image:
    """Paint a cube of value ``labels[name]`` at the nearest voxel of each landmark (ITK index).

    Raises when a cube would leave the image or overwrite another landmark's cube.
    """
    size_xyz = np.array(reference.GetSize())
    seg = np.zeros(size_xyz[::-1], dtype=np.uint8 if max(labels.values(), default=0) < 256 else np.uint16)
    for name, index in landmarks_index.items():
        centre = np.rint(np.asarray(index, float)).astype(int)
        if np.any(centre < 0) or np.any(centre >= size_xyz):
            raise LandmarkError(f"landmark '{name}' at voxel {np.round(index, 2).tolist()} lies outside the image "
                                f"of size {size_xyz.tolist()}")
        lo = np.maximum(centre - CUBE_HALF_WIDTH, 0)
        hi = np.minimum(centre + CUBE_HALF_WIDTH + 1, size_xyz)
        block = seg[lo[2]:hi[2], lo[1]:hi[1], lo[0]:hi[0]]
        if np.any(block):
            other = [n for n, v in labels.items() if v in set(np.unique(block)) - {0}]
            raise LandmarkError(f"landmarks '{name}' and '{other[0]}' are closer than the 3x3x3 cube; "
                                f"their labels would overwrite each other")
        block[...] = labels[name]
    image = sitk.GetImageFromArray(seg)
    image.CopyInformation(reference)
    return image


def landmarks_from_labelmap(seg_zyx: np.ndarray, labels: Mapping[str, int]) -> Dict[str, np.ndarray]:
    """Centre of mass of each label's voxels as a continuous ITK index; absent labels are left out."""
    present = [(name, value) for name, value in labels.items() if np.any(seg_zyx == value)]
    if not present:
        return {}
    centres = ndimage.center_of_mass(np.ones_like(seg_zyx, dtype=np.uint8), seg_zyx,
                                     [value for _, value in present])
    return {name: numpy_to_itk_index(c) for (name, _), c in zip(present, centres)}


def count_blobs(seg_zyx: np.ndarray, value: int) -> int:
    """Number of 26-connected components of one label value."""
    _, n = ndimage.label(seg_zyx == value, structure=np.ones((3, 3, 3)))
    return n
