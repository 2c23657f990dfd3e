"""Landmarks <-> nnU-Net label maps with one 3x3x3 cube per landmark (paper §2)."""
from itertools import combinations, product
from typing import Dict, List, Mapping, Tuple

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from nnlandmark.errors import LandmarkError
from nnlandmark.geometry import numpy_to_itk_index

CUBE_HALF_WIDTH = 1  # 3x3x3 cubes
_CUBE_OFFSETS = np.array(list(product(range(-CUBE_HALF_WIDTH, CUBE_HALF_WIDTH + 1), repeat=3)))


def overlapping_cubes(landmarks_index: Mapping[str, np.ndarray]) -> List[Tuple[str, str]]:
    """Pairs of landmarks whose cubes (around their nearest voxels) share voxels."""
    centres = {name: np.rint(np.asarray(index, float)) for name, index in landmarks_index.items()}
    return [(a, b) for a, b in combinations(centres, 2)
            if np.max(np.abs(centres[a] - centres[b])) <= 2 * CUBE_HALF_WIDTH]


def landmarks_to_labelmap(reference: sitk.Image, landmarks_index: Mapping[str, np.ndarray],
                          labels: Mapping[str, int], strict: bool = True) -> sitk.Image:
    """Paint a cube of value ``labels[name]`` at the nearest voxel of each landmark (ITK index).

    Where the cubes of close landmarks overlap, each shared voxel goes to the landmark whose continuous
    position is nearest, so every landmark keeps a blob around its own voxel instead of being overwritten.
    ``strict`` (training labels) raises when a landmark lies outside the image or two landmarks share their nearest
    voxel; otherwise (pictures of predictions) such landmarks simply get fewer or no voxels.
    """
    size_xyz = np.array(reference.GetSize())
    owner: Dict[tuple, Tuple[float, str]] = {}  # voxel (x, y, z) -> (distance, landmark)
    nearest: Dict[tuple, str] = {}
    for name, index in landmarks_index.items():
        index = np.asarray(index, float)
        centre = np.rint(index).astype(int)
        if np.any(centre < 0) or np.any(centre >= size_xyz):
            if not strict:
                continue
            raise LandmarkError(f"landmark '{name}' at voxel {np.round(index, 2).tolist()} lies outside the image "
                                f"of size {size_xyz.tolist()}")
        if tuple(centre) in nearest and strict:
            raise LandmarkError(f"landmarks '{name}' and '{nearest[tuple(centre)]}' both lie nearest to voxel "
                                f"{centre.tolist()}: they cannot both be encoded at this resolution")
        nearest[tuple(centre)] = name
        for voxel in centre + _CUBE_OFFSETS:
            if np.any(voxel < 0) or np.any(voxel >= size_xyz):
                continue
            key, distance = tuple(voxel), float(np.linalg.norm(voxel - index))
            if key not in owner or distance < owner[key][0]:
                owner[key] = (distance, name)
    seg = np.zeros(size_xyz[::-1], dtype=np.uint8 if max(labels.values(), default=0) < 256 else np.uint16)
    for (x, y, z), (_, name) in owner.items():
        seg[z, y, x] = labels[name]
    lost = set(landmarks_index) - {name for _, name in owner.values()}
    if lost and strict:
        raise LandmarkError(f"landmark '{sorted(lost)[0]}' has no voxel left: its neighbours are closer to all of "
                            f"its cube")
    image = sitk.GetImageFromArray(seg)
    image.CopyInformation(reference)
    return image


def prediction_labelmap(image_path: str, prediction: dict) -> sitk.Image:
    """A label map on the grid of the predicted image (read from its header only) with a cube at each predicted
    landmark that is present; label values as in the prediction."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(image_path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        raise LandmarkError(f"cannot read image {image_path}") from None
    reference = sitk.Image(list(reader.GetSize()[:3]), sitk.sitkUInt8)
    reference.SetOrigin(reader.GetOrigin()[:3])
    reference.SetSpacing(reader.GetSpacing()[:3])
    reference.SetDirection(np.asarray(reader.GetDirection()).reshape(reader.GetDimension(), -1)[:3, :3].ravel())
    entries = {name: e for name, e in prediction["landmarks"].items() if e.get("present", True)}
    return landmarks_to_labelmap(reference, {name: np.asarray(e["voxel"], float) for name, e in entries.items()},
                                 {name: int(e["label"]) for name, e in entries.items()}, strict=False)


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
