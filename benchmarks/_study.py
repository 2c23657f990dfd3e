"""A synthetic set that looks like a real landmark study: 32 landmarks on 80x96x80 volumes at 2 mm.

One fixed "anatomy" (a head: skull shell, brain with folded texture, two ventricles, a few compact nuclei) with 32
landmarks on it, two pairs of them 2.3-4.2 mm apart (like the mammillary bodies). Every case is that anatomy under
its own smooth deformation (affine: rotation up to 8 degrees, scaling 0.92-1.08, shift up to 12 mm; plus a smooth
displacement field of about 3 mm), with its own intensity scaling, bias field and noise. Landmarks move with the
anatomy, so their positions in each case are exact.
"""
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from scipy.spatial.transform import Rotation

SHAPE = (80, 96, 80)      # numpy (z, y, x)
SPACING = 2.0             # mm
N_LANDMARKS = 32
CLOSE_PAIRS = 2


def _template(rng):
    """Template image (z, y, x) and landmark positions (numpy order, voxels)."""
    zyx = np.stack(np.meshgrid(*[np.arange(s, dtype=float) for s in SHAPE], indexing="ij"), -1)
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
    """One deformed case: image (z, y, x) and its landmark positions (numpy order, voxels)."""
    centre = (np.array(SHAPE) - 1) / 2
    rotation = Rotation.from_rotvec(np.deg2rad(rng.uniform(-8, 8, 3))).as_matrix()
    matrix = rotation @ np.diag(rng.uniform(0.92, 1.08, 3))
    shift = rng.uniform(-6, 6, 3)
    field = np.stack([ndimage.gaussian_filter(rng.normal(size=[s // 4 for s in SHAPE]), 2) for _ in range(3)])
    field *= 1.5 / field.std()  # ~1.5 voxel = 3 mm displacement, smooth over ~30 mm
    field = np.stack([ndimage.zoom(f, 4, order=1) for f in field])

    def displacement(p):  # (M, 3) -> (M, 3), voxels
        return np.stack([ndimage.map_coordinates(f, p.T, order=1, mode="nearest") for f in field], -1)

    def forward(p):  # template -> case
        return (p - centre) @ matrix.T + centre + shift + displacement(p)

    grid = np.stack(np.meshgrid(*[np.arange(s, dtype=float) for s in SHAPE], indexing="ij"), -1).reshape(-1, 3)
    inverse = np.linalg.inv(matrix)
    source = grid.copy()
    for _ in range(6):  # fixed point of forward(source) = grid
        source = (grid - centre - shift - displacement(source)) @ inverse.T + centre
    image = ndimage.map_coordinates(template, source.T, order=1, mode="constant").reshape(SHAPE)
    bias = ndimage.zoom(ndimage.gaussian_filter(rng.normal(size=(5, 6, 5)), 1), 16, order=1)[:SHAPE[0], :SHAPE[1],
                                                                                               :SHAPE[2]]
    image = image * rng.uniform(0.8, 1.25) * (1 + 0.15 * bias / bias.std()) + rng.normal(0, 0.08, SHAPE)
    return image.astype(np.float32), forward(template_points)


def write_study_cases(folder: Path, n_cases: int, seed: int = 0):
    """Write CASE.nii.gz images (2 mm, LPS identity) and return {case: {landmark: ITK index (x, y, z)}}."""
    from tqdm import tqdm
    template, points = _template(np.random.default_rng(1234))  # the anatomy is the same for every seed
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    truth = {}
    for i in tqdm(range(n_cases), desc="synthetic study cases"):
        while True:  # a case whose deformation pushes a landmark off the volume is drawn again
            image, case_points = _case(template, points, rng)
            if np.all((case_points >= 1.5) & (case_points <= np.array(SHAPE) - 2.5)):
                break
        itk = sitk.GetImageFromArray(image)
        itk.SetSpacing((SPACING,) * 3)
        case = f"study_{i:03d}"
        sitk.WriteImage(itk, str(folder / f"{case}.nii.gz"))
        truth[case] = {f"L{j:02d}": p[::-1] for j, p in enumerate(case_points)}
    return truth
