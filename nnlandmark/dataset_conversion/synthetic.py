"""Small synthetic landmark datasets (no downloads) for the demo and the end-to-end tests.

Each case holds three spheres (radius 3, 5 and 7 voxels; bright, dark and medium) at random sub-voxel
positions on a smooth, noisy background; the landmarks are the sphere centres. The geometry is non-trivial (origin offset, a
flipped axis) so that world coordinates are exercised.
"""
import os
from os.path import join
from typing import Dict, Optional, Tuple, Union

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from nnlandmark.geometry import Geometry, voxel_grid_itk
from nnlandmark.io.atomic import write_json_atomic, write_text_atomic
from nnlandmark.io.predictions import write_landmark_table
from nnlandmark.labelmaps import landmarks_to_labelmap
from nnlandmark.landmark_set import LANDMARKS_VOXEL_JSON, LANDMARKS_WORLD_JSON

LANDMARKS = {"small_sphere": 3.0, "medium_sphere": 5.0, "large_sphere": 7.0}  # name -> radius in voxels
INTENSITY = {"small_sphere": 2.0, "medium_sphere": -1.5, "large_sphere": 1.0}  # added to the background
ORIGIN = (-30.0, 12.5, 100.0)
DIRECTION = (1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)


def _case(rng: np.random.Generator, size: int, spacing, absent=()):
    """One image and its landmark centres (ITK index), spheres kept apart and inside the volume; spheres named in
    ``absent`` are not drawn (and not returned)."""
    while True:
        centres = {n: rng.uniform(r + 3, size - r - 4, 3) for n, r in LANDMARKS.items()}
        pairs = [(a, b) for a in LANDMARKS for b in LANDMARKS if a < b]
        if all(np.linalg.norm(centres[a] - centres[b]) > LANDMARKS[a] + LANDMARKS[b] + 4 for a, b in pairs):
            break
    xyz = voxel_grid_itk((size,) * 3)
    background = ndimage.gaussian_filter(rng.normal(0, 1, (size,) * 3), 4) * 3
    image = background + rng.normal(0, 0.15, (size,) * 3)
    centres = {n: c for n, c in centres.items() if n not in absent}
    for name, centre in centres.items():
        image += INTENSITY[name] * (np.linalg.norm(xyz - centre, axis=-1) <= LANDMARKS[name])
    itk = sitk.GetImageFromArray(image.astype(np.float32))
    itk.SetSpacing(spacing)
    itk.SetOrigin(ORIGIN)
    itk.SetDirection(DIRECTION)
    return itk, centres


def make_synthetic_dataset(raw_root: str, dataset_id: int = 990, name: str = "SyntheticSpheres",
                           n_train: int = 20, n_test: int = 5, size: int = 64,
                           spacing=(1.0, 1.0, 1.0), seed: int = 0, absent_fraction: Optional[Dict[str, float]] = None,
                           subvoxel_cubes: bool = True) -> str:
    """Write ``DatasetXXX_name`` (imagesTr/labelsTr/imagesTs/labelsTs, dataset.json, landmark JSONs).
    ``absent_fraction`` {sphere: p}: that sphere is missing from a random share p of the cases (null in the JSONs,
    declared in dataset.json's ``landmarks_may_be_absent``). ``subvoxel_cubes=False``: the paper's plain cubes."""
    folder = join(raw_root, f"Dataset{dataset_id:03d}_{name}")
    for sub in ("imagesTr", "labelsTr", "imagesTs", "labelsTs"):
        os.makedirs(join(folder, sub), exist_ok=True)
    labels = {n: i + 1 for i, n in enumerate(LANDMARKS)}
    rng = np.random.default_rng(seed)
    voxel: Dict[str, dict] = {}
    world: Dict[str, dict] = {}
    for i in range(n_train + n_test):
        split = "Tr" if i < n_train else "Ts"
        case = f"sphere_{i:03d}"
        absent = [n for n, p in (absent_fraction or {}).items() if rng.uniform() < p]
        image, centres = _case(rng, size, spacing, absent)
        sitk.WriteImage(image, join(folder, f"images{split}", f"{case}_0000.nii.gz"))
        sitk.WriteImage(landmarks_to_labelmap(image, centres, labels, subvoxel=subvoxel_cubes),
                        join(folder, f"labels{split}", f"{case}.nii.gz"))
        geometry = Geometry.of_image(image)
        voxel[case] = {n: centres[n].tolist() if n in centres else None for n in LANDMARKS}
        world[case] = {n: geometry.index_to_world(centres[n]).tolist() if n in centres else None for n in LANDMARKS}
    dataset_json = {"channel_names": {"0": "synthetic"}, "labels": {"background": 0, **labels},
                    "numTraining": n_train, "file_ending": ".nii.gz",
                    "description": "nnlandmark synthetic spheres; landmarks are sphere centres"}
    if absent_fraction:
        dataset_json["landmarks_may_be_absent"] = sorted(absent_fraction)
    write_json_atomic(dataset_json, join(folder, "dataset.json"))
    write_landmark_table(join(folder, LANDMARKS_VOXEL_JSON), voxel, "voxel")
    write_landmark_table(join(folder, LANDMARKS_WORLD_JSON), world, "LPS")
    return folder


CONTACT_RADIUS, CONTACT_INTENSITY = 3.0, 2.0   # the multi-instance class: bright spheres like "small_sphere"


def _instance_case(rng: np.random.Generator, size: int, spacing, n_contacts: int, singles=("medium_sphere",
                                                                                         "large_sphere")):
    """An image with the ``singles`` spheres and ``n_contacts`` bright contact spheres, all kept apart."""
    radii = [LANDMARKS[n] for n in singles] + [CONTACT_RADIUS] * n_contacts
    while True:
        centres = [rng.uniform(r + 3, size - r - 4, 3) for r in radii]
        if all(np.linalg.norm(centres[a] - centres[b]) > radii[a] + radii[b] + 4
               for a in range(len(radii)) for b in range(a)):
            break
    xyz = voxel_grid_itk((size,) * 3)
    image = ndimage.gaussian_filter(rng.normal(0, 1, (size,) * 3), 4) * 3 + rng.normal(0, 0.15, (size,) * 3)
    intensities = [INTENSITY[n] for n in singles] + [CONTACT_INTENSITY] * n_contacts
    for centre, radius, intensity in zip(centres, radii, intensities):
        image += intensity * (np.linalg.norm(xyz - centre, axis=-1) <= radius)
    itk = sitk.GetImageFromArray(image.astype(np.float32))
    itk.SetSpacing(spacing)
    itk.SetOrigin(ORIGIN)
    itk.SetDirection(DIRECTION)
    return itk, dict(zip(singles, centres[:len(singles)])), centres[len(singles):]


def write_instance_sources(folder: str, n_cases: int, size: int = 48, spacing=(1.0, 1.0, 1.0),
                           max_contacts: Union[int, str] = 6, seed: int = 0) -> Tuple[str, str]:
    """A multi-instance source set as a user has it: FOLDER/images/CASE.nii.gz and FOLDER/landmarks/CASE.csv
    (``name,i,j,k`` voxel rows, 0-``max_contacts`` "contact" spheres as repeated rows beside two single spheres),
    for ``nnLandmark_convert --multi-instance contact``; ``max_contacts="one"``: exactly one contact per case (a
    single landmark, the reference). Returns the two folders."""
    images, landmarks = join(folder, "images"), join(folder, "landmarks")
    os.makedirs(images, exist_ok=True)
    os.makedirs(landmarks, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n_cases):
        case = f"contacts_{i:03d}"
        count = 1 if max_contacts == "one" else int(rng.integers(0, max_contacts + 1))
        image, singles, contacts = _instance_case(rng, size, spacing, count)
        sitk.WriteImage(image, join(images, f"{case}.nii.gz"))
        rows = [(n, c) for n, c in singles.items()] + [("contact", c) for c in contacts]
        lines = [f"{n},{float(c[0])!r},{float(c[1])!r},{float(c[2])!r}\n" for n, c in rows]
        write_text_atomic("name,i,j,k\n" + "".join(lines), join(landmarks, f"{case}.csv"))
    return images, landmarks


PLANAR_OUTLINE, PLANAR_INNER = 12, 7   # landmarks: the vertices of an outer and an inner outline ("radiograph")


def _planar_mean_shape(n_outline: int, n_inner: int) -> np.ndarray:
    """(n_outline + n_inner, 2) vertices in units of the image size, centred on 0: two irregular outlines (like a
    skull and a jaw on a cephalogram), the same for every case before its pose and shape change."""
    rng = np.random.default_rng(1234)
    outline = [(0.30 + 0.04 * rng.uniform(-1, 1)) * np.array([np.cos(a), 0.85 * np.sin(a)])
               for a in np.linspace(0, 2 * np.pi, n_outline, endpoint=False) + 0.1]
    inner = [np.array([0.08, 0.10]) + (0.11 + 0.03 * rng.uniform(-1, 1)) * np.array([np.cos(a), np.sin(a)])
             for a in np.linspace(0, 2 * np.pi, n_inner, endpoint=False) + 0.3]
    return np.array(outline + inner)


def _planar_case(rng: np.random.Generator, size: int, mean_shape: np.ndarray, n_outline: int):
    """A grey-scale image (uint8, size x size) of two filled outlines on a smooth noisy background, and their vertices
    (N, 2) as continuous pixel index (i = column, j = row): a random pose (rotation up to 15 degrees, scale 0.9-1.1,
    shift up to 8 % of the size) and a smooth shape change (vertices moved up to about 1.5 % of the size)."""
    from matplotlib.path import Path
    angle, scale = np.deg2rad(rng.uniform(-15, 15)), rng.uniform(0.9, 1.1)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    shape = mean_shape + ndimage.gaussian_filter1d(rng.normal(0, 0.012, mean_shape.shape), 1.0, axis=0, mode="wrap")
    points = (shape @ rotation.T * scale + 0.5 + rng.uniform(-0.08, 0.08, 2)) * size
    pixels = np.stack(np.meshgrid(np.arange(size), np.arange(size), indexing="xy"), -1).reshape(-1, 2)
    image = ndimage.gaussian_filter(rng.normal(0, 1, (size, size)), size / 16) * 20 + 60
    for vertices, value in ((points[:n_outline], 70), (points[n_outline:], 60)):
        image += value * Path(vertices).contains_points(pixels).reshape(size, size)
    image = ndimage.gaussian_filter(image, 1.0) + rng.normal(0, 4, (size, size))
    return np.clip(image, 0, 255).astype(np.uint8), points


def write_planar_sources(folder: str, n_cases: int, size: int = 256, n_outline: int = PLANAR_OUTLINE,
                         n_inner: int = PLANAR_INNER, seed: int = 0) -> Tuple[str, str]:
    """A 2D landmark set as a radiograph user has it: FOLDER/images/CASE.png (no pixel spacing in the file) and
    FOLDER/landmarks/CASE.csv (``name,i,j`` pixel rows, landmarks ``L01``... at the vertices of two outlines), for
    ``nnLandmark_convert ... --spacing``. Returns the two folders."""
    images, landmarks = join(folder, "images"), join(folder, "landmarks")
    os.makedirs(images, exist_ok=True)
    os.makedirs(landmarks, exist_ok=True)
    rng = np.random.default_rng(seed)
    mean_shape = _planar_mean_shape(n_outline, n_inner)
    for i in range(n_cases):
        case = f"radiograph_{i:03d}"
        image, points = _planar_case(rng, size, mean_shape, n_outline)
        sitk.WriteImage(sitk.GetImageFromArray(image), join(images, f"{case}.png"))
        lines = [f"L{n + 1:02d},{float(p[0])!r},{float(p[1])!r}\n" for n, p in enumerate(points)]
        write_text_atomic("name,i,j\n" + "".join(lines), join(landmarks, f"{case}.csv"))
    return images, landmarks
