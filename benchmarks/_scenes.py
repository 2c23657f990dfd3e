"""Every synthetic scene the benchmarks draw (the demo's spheres come from nnlandmark.dataset_conversion.synthetic).

- ``head``: a head with two identical eyes mirror-symmetric about its mid-plane, a nose and a chin (mirror_pairs.py);
- ``spheres_and_close_pair``: three separated spheres plus two small bodies 1.15-2.1 voxels apart
  (subvoxel_and_close_landmarks.py --data pair);
- ``partial_volume_balls``: a 32³ scan with two balls drawn with partial-volume edges (--data small);
- the study (``write_study_cases``, learning_efficiency.py): 32 landmarks on 80x96x80 volumes at 2 mm that look like
  a real landmark study; its deformations also make the real-anatomy studies of _afids.py.

A scene draws one scan from a random generator: ``draw(rng) -> (image, {landmark: ITK index})``, the image a numpy
(z, y, x) array; ``write_scans`` writes a series of them. Voxel grids come from nnlandmark.geometry
(``voxel_grid_itk``), so a landmark's ITK index (x, y, z) and the image array's (z, y, x) are never swapped by hand.
"""
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple

import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from scipy.spatial.transform import Rotation

from nnlandmark.geometry import itk_order, voxel_grid_itk

Points = Dict[str, np.ndarray]                       # landmark -> continuous ITK index (x, y, z)
Scene = Callable[[np.random.Generator], Tuple[np.ndarray, Points]]


# ------------------------------------------------------------------------------------------------ drawing, writing
def smooth_noise(rng, shape, sigma: float, scale: float) -> np.ndarray:
    """Gaussian-smoothed white noise times ``scale``: a smooth background texture."""
    return ndimage.gaussian_filter(rng.normal(0, 1, shape), sigma) * scale


def ball(xyz: np.ndarray, centre, radius: float) -> np.ndarray:
    """Bool mask of the voxels (``xyz``: ``voxel_grid_itk``) within ``radius`` of ``centre`` (ITK index)."""
    return np.linalg.norm(xyz - centre, axis=-1) <= radius


def partial_volume_ball(xyz: np.ndarray, centre, radius: float) -> np.ndarray:
    """Each voxel's share (0-1, linear across its width) inside the ball: edges as a scanner's voxel averages."""
    return np.clip(radius + 0.5 - np.linalg.norm(xyz - centre, axis=-1), 0, 1)


def write_scan(image: np.ndarray, path, spacing=None, origin=None, like: Optional[sitk.Image] = None) -> None:
    """A numpy (z, y, x) image as an image file: on the grid of ``like`` where given, else identity direction,
    spacing 1 and origin 0 unless given."""
    itk = sitk.GetImageFromArray(image)
    if like is not None:
        itk.CopyInformation(like)
    if spacing is not None:
        itk.SetSpacing(spacing)
    if origin is not None:
        itk.SetOrigin(origin)
    sitk.WriteImage(itk, str(path))


def write_scans(folder, n: int, draw: Scene, rng: np.random.Generator, prefix: str, spacing=None, origin=None,
                like: Optional[sitk.Image] = None, progress: Optional[str] = None) -> Dict[str, Points]:
    """Draw ``n`` scans one after the other from ``rng``, write each as folder/PREFIX_NNN.nii.gz; returns
    {case: {landmark: ITK index}}."""
    from tqdm import tqdm
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    truth = {}
    for i in tqdm(range(n), desc=progress, disable=progress is None):
        image, points = draw(rng)
        case = f"{prefix}_{i:03d}"
        write_scan(image, folder / f"{case}.nii.gz", spacing, origin, like)
        truth[case] = points
    return truth


# ------------------------------------------------------------------------------------------------ head (mirror pairs)
HEAD_SIZE = 64
HEAD_ORIGIN = (-32.0, -32.0, -32.0)
HEAD_FEATURES = (("left_eye", 3, 2.0), ("right_eye", 3, 2.0), ("nose", 3.5, -2.0), ("chin", 4, 1.2))  # radius, value


def head(rng) -> Tuple[np.ndarray, Points]:
    """A head (64³, float32): a bright ellipsoid with two identical "eyes" placed mirror-symmetrically about its
    mid-plane (with jitter), a dark "nose" on the mid-plane and a "chin" below it; x runs left-right."""
    centre = np.array([HEAD_SIZE / 2, HEAD_SIZE / 2, HEAD_SIZE / 2]) + rng.uniform(-4, 4, 3)
    half_width = rng.uniform(9, 13)  # eye distance from the mid-plane
    eye_y, eye_z = centre[1] + rng.uniform(6, 10), centre[2] + rng.uniform(2, 6)
    points = {"left_eye": np.array([centre[0] + half_width, eye_y, eye_z]) + rng.normal(0, 0.7, 3),
              "right_eye": np.array([centre[0] - half_width, eye_y, eye_z]) + rng.normal(0, 0.7, 3),
              "nose": np.array([centre[0], centre[1] + rng.uniform(12, 15), centre[2] - rng.uniform(0, 3)]),
              "chin": np.array([centre[0], centre[1] + rng.uniform(8, 12), centre[2] - rng.uniform(12, 16)])}
    xyz = voxel_grid_itk((HEAD_SIZE,) * 3)
    shell = np.linalg.norm((xyz - centre) / [22, 20, 24], axis=-1) <= 1
    image = smooth_noise(rng, (HEAD_SIZE,) * 3, 3, 2) + 1.5 * shell
    for name, radius, value in HEAD_FEATURES:
        image += value * ball(xyz, points[name], radius)
    return (image + rng.normal(0, 0.2, image.shape)).astype(np.float32), points


# ------------------------------------------------------------------------------------------------ sub-voxel scenes
SCAN_SIZE = 64
SPHERES = {"small_sphere": (3.0, 2.0), "medium_sphere": (5.0, -1.5), "large_sphere": (7.0, 1.0)}  # radius, value
BODY_RADIUS, BODY_VALUE = 1.3, 2.5
PAIR_DISTANCE = (1.15, 2.1)  # voxels: the mammillary bodies' 2.3-4.2 mm at nnU-Net's 2 mm
SEPARATED = list(SPHERES)
CLOSE = ["left_body", "right_body"]
CLOSE_PAIR_NAMES = SEPARATED + CLOSE
SMALL_SIZE = 32
SMALL_BALLS = {"bright_ball": (3.0, 2.0), "dark_ball": (4.0, -1.5)}  # radius, value


def grid_and_background(rng, size: int) -> tuple:
    """Every voxel's ITK index (x, y, z) and a smooth, noisy background, numpy (z, y, x), for a size³ scan."""
    shape = (size,) * 3
    return voxel_grid_itk(shape), smooth_noise(rng, shape, 4, 3) + rng.normal(0, 0.15, shape)


def spheres_and_close_pair(rng) -> Tuple[np.ndarray, Points]:
    """A 64³ scan with the demo's three separated spheres and a pair of small "mammillary bodies" (balls of radius
    1.3 voxels) whose centres lie 1.15-2.1 voxels apart, roughly left-right, all at random sub-voxel positions."""
    while True:
        points = {n: rng.uniform(r + 4, SCAN_SIZE - r - 5, 3) for n, (r, _) in SPHERES.items()}
        middle = rng.uniform(10, SCAN_SIZE - 11, 3)
        direction = np.array([1.0, 0, 0]) + rng.normal(0, 0.3, 3)  # left-right, tilted
        direction /= np.linalg.norm(direction)
        half = rng.uniform(*PAIR_DISTANCE) / 2
        points["left_body"], points["right_body"] = middle + half * direction, middle - half * direction
        radii = {**{n: r for n, (r, _) in SPHERES.items()}, "left_body": BODY_RADIUS, "right_body": BODY_RADIUS}
        apart = [np.linalg.norm(points[a] - points[b]) > radii[a] + radii[b] + 4
                 for a in SEPARATED for b in CLOSE_PAIR_NAMES if a < b or b in CLOSE]
        if all(apart):
            break
    xyz, image = grid_and_background(rng, SCAN_SIZE)
    for name, (radius, value) in SPHERES.items():
        image += value * ball(xyz, points[name], radius)
    for name in CLOSE:
        image += BODY_VALUE * ball(xyz, points[name], BODY_RADIUS)
    return image.astype(np.float32), points


def partial_volume_balls(rng) -> Tuple[np.ndarray, Points]:
    """A 32³ scan (one network patch, so no sliding-window seams) with two balls at random sub-voxel positions,
    drawn with partial-volume edges as a scanner's voxel averages would: the image itself says where each centre
    lies within its voxel."""
    while True:
        points = {n: rng.uniform(r + 3, SMALL_SIZE - r - 4, 3) for n, (r, _) in SMALL_BALLS.items()}
        if np.linalg.norm(points["bright_ball"] - points["dark_ball"]) > sum(r for r, _ in SMALL_BALLS.values()) + 4:
            break
    xyz, image = grid_and_background(rng, SMALL_SIZE)
    for name, (radius, value) in SMALL_BALLS.items():
        image += value * partial_volume_ball(xyz, points[name], radius)
    return image.astype(np.float32), points


# ------------------------------------------------------------------------------------------------ the study
# One fixed "anatomy" (a head: skull shell, brain with folded texture, two ventricles, a few compact nuclei) with 32
# landmarks on it, two pairs of them 2.3-4.2 mm apart (like the mammillary bodies). Every case is that anatomy under
# its own smooth deformation (affine: rotation up to 8 degrees, scaling 0.92-1.08, shift up to 12 mm; plus a smooth
# displacement field of about 3 mm), with its own intensity scaling, bias field and noise. Landmarks move with the
# anatomy, so their positions in each case are exact. The anatomy and its deformations are drawn in numpy order
# (z, y, x); the landmarks are returned as ITK index.
SHAPE = (80, 96, 80)      # numpy (z, y, x)
SPACING = 2.0             # mm
N_LANDMARKS = 32
CLOSE_PAIRS = 2


def _voxel_grid_zyx(shape) -> np.ndarray:
    """(*shape, 3) float numpy position (z, y, x) of every voxel: the study's own frame."""
    return np.stack(np.meshgrid(*[np.arange(s, dtype=float) for s in shape], indexing="ij"), -1)


def _template(rng):
    """Template image (z, y, x) and landmark positions (numpy order, voxels)."""
    zyx = _voxel_grid_zyx(SHAPE)
    centre = np.array(SHAPE) / 2
    radius = np.linalg.norm((zyx - centre) / [34, 42, 34], axis=-1)
    texture = ndimage.gaussian_filter(rng.normal(size=SHAPE), 2.0)
    texture /= texture.std()
    image = np.where(radius < 1, 1.0 + 0.35 * np.sin(4 * texture), 0.0)                 # brain with "folds"
    image += 1.2 * ((radius >= 0.9) & (radius < 1.0))                                     # skull shell
    ventricles = []
    for side in (-1, 1):
        c = centre + [2, -4, side * 7]
        ventricles.append(c)
        image -= 0.8 * (np.linalg.norm((zyx - c) / [6, 14, 3.5], axis=-1) < 1)
    nuclei = [centre + rng.uniform(-18, 18, 3) * [1, 1.2, 1] for _ in range(8)]
    for i, c in enumerate(nuclei):
        image += (0.9 if i % 2 else -0.6) * (np.linalg.norm(zyx - c, axis=-1) < rng.uniform(2, 3.5))
    # landmarks: nucleus centres, ventricle tips, points on the skull, random points inside the brain
    points = list(nuclei)
    for c in ventricles:
        points += [c + [0, 14, 0], c - [0, 14, 0]]
    for direction in ([1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]):
        points.append(centre + 0.9 * np.array(direction) * [34, 42, 34])
    while len(points) < N_LANDMARKS - 2 * CLOSE_PAIRS:
        p = centre + rng.uniform(-1, 1, 3) * [30, 38, 30]
        if np.linalg.norm((p - centre) / [34, 42, 34]) < 0.85:
            points.append(p)
    for _ in range(CLOSE_PAIRS):  # two small bodies 2.3-4.2 mm apart, left-right, each a landmark
        middle = centre + rng.uniform(-10, 10, 3)
        half = rng.uniform(2.3, 4.2) / SPACING / 2
        for side in (-1, 1):
            p = middle + [0, 0, side * half]
            image += 0.9 * (np.linalg.norm(zyx - p, axis=-1) < 1.2)
            points.append(p)
    return image, np.array(points)


def _case(template, template_points, rng):
    """One deformed case of ``template`` (any shape): image (z, y, x) and its landmark positions (numpy order,
    voxels)."""
    shape = template.shape
    centre = (np.array(shape) - 1) / 2
    rotation = Rotation.from_rotvec(np.deg2rad(rng.uniform(-8, 8, 3))).as_matrix()
    matrix = rotation @ np.diag(rng.uniform(0.92, 1.08, 3))
    shift = rng.uniform(-6, 6, 3)
    field = np.stack([ndimage.gaussian_filter(rng.normal(size=[s // 4 for s in shape]), 2) for _ in range(3)])
    field *= 1.5 / field.std()  # ~1.5 voxel = 3 mm displacement, smooth over ~30 mm
    field = np.stack([ndimage.zoom(f, np.divide(shape, f.shape), order=1) for f in field])

    def displacement(p):  # (M, 3) -> (M, 3), voxels
        return np.stack([ndimage.map_coordinates(f, p.T, order=1, mode="nearest") for f in field], -1)

    def forward(p):  # template -> case
        return (p - centre) @ matrix.T + centre + shift + displacement(p)

    grid = _voxel_grid_zyx(shape).reshape(-1, 3)
    inverse = np.linalg.inv(matrix)
    source = grid.copy()
    for _ in range(6):  # fixed point of forward(source) = grid
        source = (grid - centre - shift - displacement(source)) @ inverse.T + centre
    image = ndimage.map_coordinates(template, source.T, order=1, mode="constant").reshape(shape)
    coarse = [-(-s // 16) for s in shape]  # a bias field smooth over ~5 coarse cells per axis
    bias = ndimage.zoom(ndimage.gaussian_filter(rng.normal(size=coarse), 1), 16, order=1)[tuple(map(slice, shape))]
    image = image * rng.uniform(0.8, 1.25) * (1 + 0.15 * bias / bias.std()) + rng.normal(0, 0.08, shape)
    return image.astype(np.float32), forward(template_points)


def study_scene(template, template_points, names=None, gamma=None) -> Scene:
    """The study's scene: one case of the anatomy, drawn again while its deformation pushes a landmark off the
    volume; landmarks (``names``, else L00..L31) as ITK index. ``gamma`` (low, high): each case first raises the
    template's intensities to a random power in that range (a contrast change no linear scaling undoes)."""
    names = names or [f"L{j:02d}" for j in range(len(template_points))]

    def draw(rng):
        while True:
            image = template ** rng.uniform(*gamma) if gamma else template
            image, case_points = _case(image, template_points, rng)
            if np.all((case_points >= 1.5) & (case_points <= np.array(template.shape) - 2.5)):
                return image, {name: itk_order(p) for name, p in zip(names, case_points)}
    return draw


def write_study_cases(folder: Path, n_cases: int, seed: int = 0) -> Dict[str, Points]:
    """Write study_NNN.nii.gz images (2 mm, LPS identity) and return {case: {landmark: ITK index (x, y, z)}}."""
    template, points = _template(np.random.default_rng(1234))  # the anatomy is the same for every seed
    return write_scans(folder, n_cases, study_scene(template, points), np.random.default_rng(seed), "study",
                       spacing=(SPACING,) * 3, progress="synthetic study cases")
