"""FeTA 2.4 with the FeTA 2024 biometry landmarks (fetal brain T2w MRI, 10 landmarks) -> nnU-Net raw dataset.

Expected layout: ``feta_2.4.zip`` from Synapse (syn25649159, the 80 Kispi cases) unpacked, with the FeTA 2024
biometry annotations in ``derivatives/biometry`` (part of the updated Synapse release; also distributed alone as
Zenodo 10.5281/zenodo.11192452 -- copy its ``derivatives/biometry`` folder into ``feta_2.4/derivatives/``)::

    feta_2.4/                                  <- pass this folder (or the folder holding it)
    ├── sub-001/anat/
    │   ├── sub-001_rec-mial_T2w.nii.gz        super-resolution T2w volume: the image
    │   └── sub-001_rec-mial_dseg.nii.gz       tissue segmentation (not used)
    ├── ...                                    sub-001..sub-080 (rec-mial or rec-irtk)
    └── derivatives/biometry/
        ├── biometry.tsv                       the measured lengths (not used)
        └── sub-001/anat/
            ├── sub-001_rec-mial_meas.nii.gz   label map in the re-aligned space (see below)
            └── sub-001_rec-mial_trf.txt       ITK transform file between original and re-aligned space

The ``_meas`` label map marks the two endpoints of each measurement with one voxel each, label 1 = LCC (length of
the corpus callosum), 2 = HV (height of the vermis), 3 = bBIP (brain biparietal diameter), 4 = sBIP (skull
biparietal diameter), 5 = TCD (transverse cerebellar diameter) -- the mapping of the release README's "Data format"
section and of MedVision's FeTA24 preparation (its numbered list gives 1 and 2 the other way round). An endpoint is
the centre of mass of one of the label's two 26-connected parts (a single voxel in the release, so its centre).
The clinicians measured on images re-aligned to the standard planes; the release's ``im_original_to_realigned.py``
makes that image as ``sitk.Resample(image, image, T)`` with T read from ``_trf.txt``, so a point p of the
re-aligned space lies at T(p) in the original image. This converter keeps the original T2w images untouched and
maps the endpoints there with T (sub-voxel positions, no interpolation of the image). The reference implementation
(MIC-DKFZ/nnLandmark, Dataset742_FeTA_2_4) resampled the images into the re-aligned space instead; as T is rigid,
distances -- landmark errors and biometry -- are the same up to that interpolation (a warning says when a transform
is not rigid).

Landmarks ``LCC_1, LCC_2, HV_1, ..., TCD_2`` (labels 1..10 in this order, like the reference's
``landmark<label>_<1|2>``). The file does not order the two endpoints; here ``_1`` is the anterior end of LCC, the
superior end of HV and the right end of bBIP, sBIP and TCD, judged along the world (LPS) axes of the re-aligned space
(MedVision's P1..P10 convention; the reference implementation took voxel scan order). A measurement whose label is
absent leaves both its landmarks absent (null); one whose label does not form two parts is treated the same and
named in a warning. The reference dropped every case with an incomplete measurement (68 cases in the paper).

Split: the paper holds out 15 test cases of a random split that is not public; ``splits/feta.json`` ships a seeded
substitute (15 of the 70 subjects the biometry release annotates, chosen by sha256 rank, see its "source" field).

Licence/citation: FeTA data are for research and education only, under the Synapse terms of the FeTA dataset team
(owner University Children's Hospital Zurich; biometry by Lausanne University Hospital); no redistribution. Cite
Payette et al. 2021 (Scientific Data 8:167) and Sanchez et al. 2024, "Fetal Tissue Annotation Challenge (FeTA)
Biometry - MICCAI 2024", Zenodo, doi:10.5281/zenodo.11192452.
"""
import glob
import sys
import warnings
from os.path import basename, dirname, isdir, isfile, join
from typing import Dict, List, Tuple

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from nnlandmark.dataset_conversion.benchmarks import shipped_test_cases, split_file, write_benchmark_dataset
from nnlandmark.dataset_conversion.dataset_writer import CaseSource, ConversionWarning
from nnlandmark.errors import LandmarkError
from nnlandmark.geometry import Geometry, itk_order

DEFAULT_NAME = "FeTA_2_4"
DEFAULT_ID = 804
CHANNEL = "T2w"
DATASET_INFO = {
    "description": "FeTA 2.4 (Kispi) super-resolution T2w fetal brain MRI with the FeTA 2024 biometry "
                   "landmarks, mapped from the re-aligned space into the original images; '_1' = anterior "
                   "(LCC), superior (HV), right (bBIP, sBIP, TCD); seeded substitute split "
                   "(splits/feta.json), not the paper's case list",
    "reference": "Payette et al. 2021, Scientific Data 8:167; Sanchez et al. 2024, FeTA Biometry - MICCAI "
                 "2024, Zenodo, doi:10.5281/zenodo.11192452",
    "licence": "research and education only under the FeTA Synapse terms (syn25649159); no redistribution"}
BIOMETRY_DIR = join("derivatives", "biometry")
# label in *_meas.nii.gz -> (abbreviation, measurement, LPS axis and sign that order the endpoints: "_1" is the one
# with the larger sign * coordinate, i.e. anterior (-y), superior (+z), right (-x))
MEASUREMENTS = {
    1: ("LCC", "length of the corpus callosum (sagittal plane)", 1, -1.0),
    2: ("HV", "height of the vermis (sagittal plane)", 2, 1.0),
    3: ("bBIP", "brain biparietal diameter (axial plane)", 0, -1.0),
    4: ("sBIP", "skull biparietal diameter (axial plane)", 0, -1.0),
    5: ("TCD", "transverse cerebellar diameter (coronal plane)", 0, -1.0),
}
LANDMARKS = tuple(f"{abbr}_{k}" for abbr, *_ in MEASUREMENTS.values() for k in (1, 2))
BIOMETRY_PAIRS = [(f"{abbr}_1", f"{abbr}_2") for abbr, *_ in MEASUREMENTS.values()]
BIOMETRY_NAMES = {f"{abbr}_1:{abbr}_2": name for abbr, name, *_ in MEASUREMENTS.values()}
SPLIT_FILE = split_file("feta")
_AXES = ("left-right", "anterior-posterior", "superior-inferior")



def _root(source_dir: str) -> str:
    if not isdir(source_dir):
        raise LandmarkError(f"{source_dir} is not a folder")
    for root in (source_dir, join(source_dir, "feta_2.4")):
        if isdir(join(root, BIOMETRY_DIR)):
            return root
    raise LandmarkError(f"no {BIOMETRY_DIR} folder in {source_dir}: pass the unpacked feta_2.4 folder, with the FeTA "
                        f"2024 biometry annotations (Zenodo 10.5281/zenodo.11192452) in feta_2.4/{BIOMETRY_DIR}")


def _companions(root: str, meas: str) -> Tuple[str, str, str]:
    """(subject, T2w image, transform file) of a ``sub-XXX_rec-YYY_meas.nii.gz``."""
    stem = basename(meas)
    stem = stem[:stem.rindex("_meas.nii")]
    subject = stem.split("_")[0]
    if not subject.startswith("sub-") or len(subject) == 4:
        raise LandmarkError(f"{meas}: file name does not start with a subject ID (sub-XXX_rec-..._meas.nii.gz)")
    candidates = [join(root, subject, "anat", f"{stem}_T2w{ending}") for ending in (".nii.gz", ".nii")]
    image = next((c for c in candidates if isfile(c)), None)
    if image is None:
        raise LandmarkError(f"{meas}: its image {candidates[0]} does not exist (FeTA 2.4 layout: "
                            f"feta_2.4/sub-XXX/anat/sub-XXX_rec-..._T2w.nii.gz next to derivatives/)")
    transform = join(dirname(meas), f"{stem}_trf.txt")
    if not isfile(transform):
        raise LandmarkError(f"{meas}: its re-alignment transform {transform} does not exist")
    return subject, image, transform


def _endpoints(labels: np.ndarray, coords: np.ndarray, values: np.ndarray, label: int):
    """The two endpoints of one label as numpy (z, y, x) positions, or (None, why not)."""
    voxels = coords[values == label]
    if len(voxels) == 0:
        return None, None
    low, high = voxels.min(0), voxels.max(0) + 1
    crop = labels[low[0]:high[0], low[1]:high[1], low[2]:high[2]] == label
    parts, n = ndimage.label(crop, structure=np.ones((3, 3, 3)))
    if n != 2:
        return None, f"{len(voxels)} voxel(s) in {n} connected part(s), not two endpoints"
    return np.asarray(ndimage.center_of_mass(crop, parts, [1, 2])) + low, None


def _read_transform(path: str):
    try:
        return sitk.ReadTransform(path)
    except RuntimeError as e:
        raise LandmarkError(f"cannot read transform {path}: {' '.join(str(e).split())[-200:]}") from None


def _is_rigid(transform, at: np.ndarray) -> bool:
    base = np.array(transform.TransformPoint(tuple(float(v) for v in at)))
    jacobian = np.array([np.array(transform.TransformPoint(tuple(float(v) for v in at + step))) - base
                         for step in np.eye(3)]).T
    return bool(np.allclose(jacobian.T @ jacobian, np.eye(3), atol=1e-3))


def _read_case(meas: str, image: str, transform_file: str, subject: str, notes: dict) -> CaseSource:
    label_image = sitk.ReadImage(meas)
    if label_image.GetDimension() != 3 or label_image.GetNumberOfComponentsPerPixel() != 1:
        raise LandmarkError(f"{meas} is not a 3D label map")
    labels = sitk.GetArrayViewFromImage(label_image)
    coords = np.argwhere(labels != 0)
    values = labels[tuple(coords.T)]
    unknown = sorted(set(np.unique(values).tolist()) - set(MEASUREMENTS))
    if unknown:
        raise LandmarkError(f"{meas}: label {unknown[0]} is not one of the FeTA biometry labels 1..5 "
                            f"({', '.join(f'{k} = {m[0]}' for k, m in MEASUREMENTS.items())})")
    geometry = Geometry.of_image(label_image)
    transform = _read_transform(transform_file)
    points, missing, realigned = {}, [], []
    for label, (abbr, _, axis, sign) in MEASUREMENTS.items():
        ends, problem = _endpoints(labels, coords, values, label)
        if ends is None:
            missing += [f"{abbr}_1", f"{abbr}_2"]
            if problem:
                notes["malformed"].append(f"{subject} {abbr} ({problem})")
            continue
        world = geometry.index_to_world(itk_order(ends))  # LPS mm, re-aligned space
        if sign * world[0, axis] < sign * world[1, axis]:
            world = world[::-1]
        if int(np.argmax(np.abs(world[0] - world[1]))) != axis:
            notes["off_axis"].append(f"{subject} {abbr}")
        realigned += list(world)
        for k, point in zip((1, 2), world):
            points[f"{abbr}_{k}"] = list(transform.TransformPoint(tuple(float(v) for v in point)))
    if realigned and not _is_rigid(transform, np.mean(realigned, axis=0)):
        notes["not_rigid"].append(subject)
    return CaseSource(case=subject, images=[image], landmarks=points, coordinate_system="LPS", source=meas,
                      missing=missing)


def _summary(items: List[str]) -> str:
    return ", ".join(items[:5]) + (", ..." if len(items) > 5 else "")


def collect_cases(source_dir: str) -> Tuple[List[CaseSource], List[str]]:
    """One case per ``*_meas.nii.gz`` under derivatives/biometry, and the test case IDs of ``splits/feta.json``."""
    root = _root(source_dir)
    files = sorted(glob.glob(join(root, BIOMETRY_DIR, "sub-*", "anat", "*_meas.nii*")))
    if not files:
        raise LandmarkError(f"no landmark files sub-XXX/anat/sub-XXX_rec-..._meas.nii.gz in "
                            f"{join(root, BIOMETRY_DIR)}")
    notes: Dict[str, List[str]] = {"malformed": [], "off_axis": [], "not_rigid": []}
    cases: Dict[str, CaseSource] = {}
    for meas in files:
        subject, image, transform = _companions(root, meas)
        if subject in cases:
            raise LandmarkError(f"subject {subject} has two landmark files: {cases[subject].source} and {meas}")
        cases[subject] = _read_case(meas, image, transform, subject, notes)
    if notes["malformed"]:
        warnings.warn(f"{len(notes['malformed'])} measurement(s) whose label does not mark two endpoints, recorded "
                      f"as absent: {_summary(notes['malformed'])}", ConversionWarning)
    if notes["off_axis"]:
        warnings.warn(f"{len(notes['off_axis'])} measurement(s) run mostly along another axis than the one that "
                      f"names their endpoints (LCC {_AXES[1]}, HV {_AXES[2]}, bBIP/sBIP/TCD {_AXES[0]}), so '_1'/'_2' "
                      f"may be swapped there: {_summary(notes['off_axis'])}", ConversionWarning)
    if notes["not_rigid"]:
        warnings.warn(f"the re-alignment transform of {len(notes['not_rigid'])} case(s) is not rigid, so landmark "
                      f"distances in the original images differ from the biometry measured in the re-aligned space: "
                      f"{_summary(notes['not_rigid'])}", ConversionWarning)
    return [cases[c] for c in sorted(cases)], shipped_test_cases("feta", cases, root)


def convert(source_dir: str, raw_root: str, dataset_id: int = DEFAULT_ID, name: str = DEFAULT_NAME,
            overwrite: bool = False) -> str:
    """feta_2.4 -> ``raw_root/Dataset804_FeTA_2_4`` (T2w channel, 10 labels, the 15 test cases of splits/feta.json)."""
    return write_benchmark_dataset(sys.modules[__name__], *collect_cases(source_dir), raw_root, dataset_id, name,
                                   overwrite)
