"""Landmarks <-> nnU-Net label maps with one 3x3x3 cube per landmark (paper §2), sub-voxel encoded.

Used by conversion (painting training labels), planning checks (blobs per label), evaluation (ground truth read back
from label maps) and prediction (``--save_labelmap``).
"""
import os
from itertools import combinations, product
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from tqdm import tqdm

from nnlandmark.errors import LandmarkError
from nnlandmark.geometry import Geometry, empty_grid_like, itk_order, numpy_order
from nnlandmark.io.atomic import read_json, written_atomically
from nnlandmark.io.images import read_image
from nnlandmark.io.predictions import Points, Presence
from nnlandmark.landmark_set import landmark_labels, may_be_absent, multi_instance, single_landmarks

CUBE_HALF_WIDTH = 1  # 3x3x3 cubes
_CUBE_OFFSETS = np.array(list(product(range(-CUBE_HALF_WIDTH, CUBE_HALF_WIDTH + 1), repeat=3)))
# Sub-voxel encoding: m voxels (0..9) of the face layer just outside the cube, on the side of the true position, shift
# the blob's centre of mass along that axis by 2m / (27 + all added voxels). A face's voxels are added in pairs
# symmetric about its centre (plus the centre for odd m), so the other axes do not move.
_FACE_PAIRS = [((-1, 0), (1, 0)), ((0, -1), (0, 1)), ((-1, -1), (1, 1)), ((-1, 1), (1, -1))]
_FACE_COUNTS = np.array(list(product(range(10), repeat=3)))                          # (1000, 3) voxels per face
_FACE_SHIFTS = 2 * _FACE_COUNTS / (27 + _FACE_COUNTS.sum(1, keepdims=True))         # centre-of-mass shift per axis


def _face_offsets(axis: int, sign: int, count: int) -> List[np.ndarray]:
    """``count`` voxels of the face 2 voxels from the centre along ``axis``, symmetric in the other two axes."""
    in_plane = ([(0, 0)] if count % 2 else []) + [uv for pair in _FACE_PAIRS[:count // 2] for uv in pair]
    others = [a for a in range(3) if a != axis]
    offsets = []
    for u, v in in_plane:
        offset = np.zeros(3, int)
        offset[axis], offset[others[0]], offset[others[1]] = 2 * sign, u, v
        offsets.append(offset)
    return offsets


def encoding_offsets(index: np.ndarray, subvoxel: bool = True) -> np.ndarray:
    """Voxel offsets (from the nearest voxel) of a landmark's blob: the 3x3x3 cube, plus with ``subvoxel`` the face
    voxels whose centre of mass is nearest to the continuous position (mean error ~0.05 voxel instead of ~0.48 for
    a plain cube). nnU-Net resamples and augments the blob as any label; our targets start at its centre of mass."""
    if not subvoxel:
        return _CUBE_OFFSETS
    delta = np.asarray(index, float) - np.rint(index)
    counts = _FACE_COUNTS[np.argmin(((_FACE_SHIFTS - np.abs(delta)) ** 2).sum(1))]
    extra = [o for axis in range(3) for o in _face_offsets(axis, 1 if delta[axis] >= 0 else -1, counts[axis])]
    return np.concatenate([_CUBE_OFFSETS, np.array(extra, int).reshape(-1, 3)])


def overlapping_cubes(landmarks_index: Mapping[str, np.ndarray]) -> List[Tuple[str, str]]:
    """Pairs of landmarks whose cubes (around their nearest voxels) share voxels."""
    centres = {name: np.rint(np.asarray(index, float)) for name, index in landmarks_index.items()}
    return [(a, b) for a, b in combinations(centres, 2)
            if np.max(np.abs(centres[a] - centres[b])) <= 2 * CUBE_HALF_WIDTH]


def landmarks_to_labelmap(reference: sitk.Image, landmarks_index: Mapping[str, np.ndarray],
                          labels: Mapping[str, int], strict: bool = True, subvoxel: bool = True) -> sitk.Image:
    """``paint_landmarks`` on the grid of ``reference``, as an image with its geometry."""
    image = sitk.GetImageFromArray(paint_landmarks(reference.GetSize(), landmarks_index, labels, strict, subvoxel))
    image.CopyInformation(reference)
    return image


def paint_landmarks(size_xyz, landmarks_index: Mapping[str, np.ndarray], labels: Mapping[str, int],
                    strict: bool = True, subvoxel: bool = True) -> np.ndarray:
    """A (z, y, x) label array with a cube of value ``labels[name]`` at the nearest voxel of each landmark (ITK
    index); with ``subvoxel`` the cube carries extra face voxels so that its centre of mass is the continuous
    position (``encoding_offsets``).

    Where the blobs of close landmarks overlap, each shared voxel goes to the landmark whose continuous position is
    nearest, so every landmark keeps a blob of its own instead of being overwritten (the paper's limitation); with
    ``subvoxel``, a blob cut by a neighbour or the image border is then trimmed until its centre of mass is back near
    its landmark (``fit_centre_of_mass``). ``strict`` (training labels) raises when a landmark lies outside the image
    or keeps no voxel; otherwise (pictures of predictions) such landmarks are left out.
    """
    size_xyz = np.array(size_xyz)
    owner: Dict[tuple, Tuple[float, str]] = {}  # voxel (x, y, z) -> (distance, landmark)
    wanted: Dict[str, int] = {}                 # landmark -> voxels of its uncut blob
    for name, index in landmarks_index.items():
        index = np.asarray(index, float)
        centre = np.rint(index).astype(int)
        if np.any(centre < 0) or np.any(centre >= size_xyz):
            if not strict:
                continue
            raise LandmarkError(f"landmark '{name}' at voxel {np.round(index, 2).tolist()} lies outside the image "
                                f"of size {size_xyz.tolist()}")
        blob = centre + encoding_offsets(index, subvoxel)
        wanted[name] = len(blob)
        for voxel in blob[np.all((blob >= 0) & (blob < size_xyz), axis=1)]:
            key, distance = tuple(voxel), float(np.linalg.norm(voxel - index))
            if key not in owner or distance < owner[key][0]:
                owner[key] = (distance, name)
    blobs: Dict[str, list] = {}
    for voxel, (_, name) in owner.items():
        blobs.setdefault(name, []).append(voxel)
    lost = sorted(set(wanted) - set(blobs))
    if lost and strict:
        raise LandmarkError(f"landmark '{lost[0]}' has no voxel left: its neighbours are closer to all of its cube "
                            f"(two landmarks at the same position?)")
    seg = np.zeros(numpy_order(size_xyz), dtype=np.uint8 if max(labels.values(), default=0) < 256 else np.uint16)
    for name, voxels in blobs.items():
        voxels = np.array(voxels)
        if subvoxel and len(voxels) < wanted[name]:
            voxels = fit_centre_of_mass(voxels, np.asarray(landmarks_index[name], float))
        seg[tuple(numpy_order(voxels).T)] = labels[name]
    return seg


def fit_centre_of_mass(voxels: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Drop voxels (x, y, z) one at a time, each time the one that brings the centre of mass nearest to ``target``,
    while that helps, the blob stays one 26-connected piece and keeps the target's nearest voxel: a blob cut by a
    neighbour or the border is lopsided away from its landmark."""
    keep = np.ones(len(voxels), bool)
    nearest = np.all(voxels == np.rint(target), axis=1)
    while keep.sum() > 1:
        total, n = voxels[keep].sum(0), keep.sum()
        candidates = np.flatnonzero(keep & ~nearest)
        errors = np.linalg.norm((total - voxels[candidates]) / (n - 1) - target, axis=1)
        current = np.linalg.norm(total / n - target)
        for i in np.argsort(errors):
            if errors[i] >= current - 1e-6:
                return voxels[keep]
            trial = keep.copy()
            trial[candidates[i]] = False
            if count_blobs_of(voxels[trial]) == 1:
                keep = trial
                break
        else:
            break
    return voxels[keep]


def count_blobs_of(voxels: np.ndarray) -> int:
    """26-connected pieces of a voxel list (x, y, z)."""
    low = voxels.min(0)
    box = np.zeros(voxels.max(0) - low + 1, bool)
    box[tuple((voxels - low).T)] = True
    return count_blobs(box, True)


def prediction_labelmap(image_path: str, prediction: dict,
                        class_labels: Optional[Mapping[str, int]] = None) -> sitk.Image:
    """A label map on the grid of the predicted image (read from its header only) with a cube at each predicted
    landmark that is present, label values as in the prediction, and at each instance of a multi-instance class,
    with its class's value from ``class_labels``."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(image_path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        raise LandmarkError(f"cannot read image {image_path}") from None
    entries = {name: e for name, e in prediction["landmarks"].items() if e.get("present", True)}
    index = {name: np.asarray(e["voxel"], float) for name, e in entries.items()}
    labels = {name: int(e["label"]) for name, e in entries.items()}
    for name, found in (prediction.get("instances") or {}).items():
        if name not in (class_labels or {}):
            raise LandmarkError(f"case '{prediction.get('case')}': no label value for the instances of '{name}'")
        for k, entry in enumerate(found, 1):
            index[f"{name} #{k}"], labels[f"{name} #{k}"] = np.asarray(entry["voxel"], float), class_labels[name]
    return landmarks_to_labelmap(empty_grid_like(reader), index, labels, strict=False, subvoxel=False)


def write_prediction_labelmap(prediction: dict, image_path: str, target: str,
                              class_labels: Optional[Mapping[str, int]] = None) -> str:
    """``prediction_labelmap`` written to ``target`` (compressed, atomically)."""
    folder, name = os.path.split(target)
    with written_atomically(target, os.path.join(folder, f".tmp{os.getpid()}.{name}")) as tmp:  # ending kept for ITK
        sitk.WriteImage(prediction_labelmap(image_path, prediction, class_labels), tmp, useCompression=True)
    return target


def landmarks_from_labelmap(seg_zyx: np.ndarray, labels: Mapping[str, int]) -> Dict[str, np.ndarray]:
    """Centre of mass of each label's voxels as a continuous ITK index; absent labels are left out."""
    present = [(name, value) for name, value in labels.items() if np.any(seg_zyx == value)]
    if not present:
        return {}
    centres = ndimage.center_of_mass(np.ones_like(seg_zyx, dtype=np.uint8), seg_zyx,
                                     [value for _, value in present])
    return {name: itk_order(np.asarray(c, float)) for (name, _), c in zip(present, centres)}


def instances_from_labelmap(seg_zyx: np.ndarray, value: int) -> List[np.ndarray]:
    """Centre of mass of each blob of a multi-instance class's label value (26-connected components, as training
    tells instances apart: trainers.instances) as continuous ITK indices."""
    components, count = ndimage.label(seg_zyx == value, structure=np.ones((3, 3, 3)))
    centres = ndimage.center_of_mass(np.ones_like(components, dtype=np.uint8), components, range(1, count + 1))
    return [itk_order(np.asarray(c, float)) for c in centres]


def count_blobs(seg_zyx: np.ndarray, value: int) -> int:
    """Number of 26-connected components of one label value."""
    _, n = ndimage.label(seg_zyx == value, structure=np.ones((3, 3, 3)))
    return n


def read_label_folder(folder, labels: Mapping[str, int], ending: str, cases: Optional[Sequence[str]] = None,
                      classes: Optional[Mapping[str, int]] = None) -> Points:
    """Every ``CASE<ending>`` label map in a folder (or those of ``cases``) -> world landmarks (cube centres of
    mass); with ``classes`` ({multi-instance class: label}), their instances instead: {case: {class: (K, 3)}}."""
    files = sorted(Path(folder).glob(f"*{ending}"))
    if cases is not None:
        files = [f for f in files if f.name[:-len(ending)] in set(cases)]
    points = {}
    for file in tqdm(files, desc=f"reading label maps in {Path(folder).name}", leave=False):
        image = read_image(file)
        geometry = Geometry.of_image(image)
        seg = sitk.GetArrayFromImage(image)
        if classes is None:
            index = landmarks_from_labelmap(seg, labels)
            points[file.name[:-len(ending)]] = {name: geometry.index_to_world(ijk) for name, ijk in index.items()}
        else:
            points[file.name[:-len(ending)]] = {name: geometry.index_to_world(
                np.reshape(instances_from_labelmap(seg, value), (-1, 3))) for name, value in classes.items()}
    return points


def read_label_instances(dataset_json: Path, folders: Sequence, cases: Optional[Sequence[str]] = None
                         ) -> Dict[str, Dict[str, np.ndarray]]:
    """{case: {class: (K, 3) world LPS}} of the multi-instance classes in the label maps in ``folders``."""
    info = read_json(dataset_json)
    classes = {name: value for name, value in landmark_labels(info).items() if name in multi_instance(info)}
    instances = {}
    for folder in folders:
        instances.update(read_label_folder(folder, {}, info["file_ending"], cases, classes))
    return instances


def read_label_maps(dataset_json: Path, folders: Sequence, cases: Optional[Sequence[str]] = None
                    ) -> Tuple[Points, Presence]:
    """(points, presence) from the label maps in ``folders`` (only those of ``cases`` if given) of the dataset
    ``dataset_json`` describes; a missing cube counts as absent only for the landmarks it declares
    ``landmarks_may_be_absent`` (otherwise it just means "not annotated"). A case in two folders is an error, no
    label map at all too."""
    info = read_json(dataset_json)
    landmark_labels(info, str(dataset_json))   # a clear error for a dataset.json without landmark labels
    labels = single_landmarks(info)
    ending = info.get("file_ending")
    if not isinstance(ending, str) or not ending:
        raise LandmarkError(f"{dataset_json}: no 'file_ending'")
    absent_ok = may_be_absent(info)
    points, presence = {}, {}
    for folder in folders:
        for case, landmarks in read_label_folder(folder, labels, ending, cases).items():
            if case in points:
                raise LandmarkError(f"{folder}: case '{case}' appears in more than one of {[str(f) for f in folders]}")
            points[case] = landmarks
            presence[case] = {n: n in landmarks for n in labels if n in landmarks or n in absent_ok}
    if not points:
        raise LandmarkError(f"no label files ending in '{ending}' in {', '.join(str(f) for f in folders)}")
    return points, presence
