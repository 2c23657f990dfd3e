"""MML (Mandibular Molar Landmarking, He et al. 2024; CT, 14 dental landmarks) -> nnU-Net raw dataset.

Expected layout: ``mmld_dataset`` as distributed by the authors (Google Drive link in the README of
https://github.com/ithet1007/mmld_code), already divided into the official splits::

    mmld_dataset/                   <- pass this folder (or its parent)
    ├── train/                      official training split
    │   ├── <case>_volume.nrrd      CT volume
    │   ├── <case>_label.npy        (14, 3) landmark positions: voxel index (i, j, k) into the NRRD array as
    │   │                           pynrrd reads it (= ITK index order); a missing landmark is a row of very
    │   │                           negative values (official code: mean < -100; NaN or <= 0 rows count too)
    │   └── <case>_spacing.npy      voxel spacing (i, j, k) in mm, used by the official code for errors in mm
    ├── val/                        official validation split (not used, as in the paper)
    └── test/                       official test split

Following the paper (sec. 3.2) only the *complete* subset is converted -- cases whose 14 landmarks are all present
(paper: 283 train, 56 val, 60 test) -- with the official train/test split; the validation cases are left out.
A landmark exists when its row is finite with a positive mean (the official metric's test). Where the NRRD header
spacing disagrees with ``_spacing.npy`` the image is re-written with the ``_spacing.npy`` spacing (origin and
direction kept), so that world coordinates and errors in mm agree with the benchmark's. Case IDs are the file
stems before ``_volume`` (characters other than letters, digits, '.', '_', '-' replaced by '_').

``LANDMARKS`` names the 14 rows of ``_label.npy`` in file order after the nnLandmark paper's Table 7 (its reference
implementation, MIC-DKFZ/nnLandmark ``Dataset733_MML``/``Dataset735_MML_comp``, numbers them landmark_0..13 in row
order); the anatomical meaning of each row was not checked against He et al.

Licence/citation: the data set carries no licence text of its own (the code repository is MIT); cite Tao He, Guikun
Xu, Li Cui, Wei Tang, Jie Long, Jixiang Guo, "Anchor ball regression model for large-scale 3D skull landmark
detection", Neurocomputing 567:127051, 2024, and respect the authors' terms of use.
"""
import glob
import os
import re
import sys
import tempfile
import warnings
from os.path import basename, isdir, join
from typing import List, Optional, Tuple

import numpy as np
import SimpleITK as sitk

from nnlandmark.dataset_conversion.benchmarks import write_benchmark_dataset
from nnlandmark.dataset_conversion.dataset_writer import CaseSource, ConversionWarning
from nnlandmark.errors import LandmarkError
from nnlandmark.io.images import read_image_header

DEFAULT_NAME = "MML"
DEFAULT_ID = 802
CHANNEL = "CT"
DATASET_INFO = {"description": "MML: 14 mandibular molar landmarks on CT; official train/test split, ",
                "reference": "He et al. 2024, Neurocomputing 567:127051",
                "licence": "no data licence stated by the distributors; cite the reference"}
LANDMARKS = (
    "left_cuspid_cusp", "left_2nd_molar_crown", "left_2nd_molar_mesial_root", "left_2nd_molar_distal_root",
    "left_3rd_molar_crown", "left_3rd_molar_mesial_root", "left_3rd_molar_distal_root",
    "right_cuspid_cusp", "right_2nd_molar_crown", "right_2nd_molar_mesial_root", "right_2nd_molar_distal_root",
    "right_3rd_molar_crown", "right_3rd_molar_mesial_root", "right_3rd_molar_distal_root",
)
SPLITS = ("train", "val", "test")
PAPER_COMPLETE_COUNTS = {"train": 283, "val": 56, "test": 60}
_BAD_ID_CHARS = re.compile(r"[^A-Za-z0-9._-]")


def _dataset_folder(source_dir: str) -> str:
    if not isdir(source_dir):
        raise LandmarkError(f"{source_dir} is not a folder")
    for folder in (source_dir, join(source_dir, "mmld_dataset")):
        if any(glob.glob(join(folder, split, "*_volume.nrrd")) for split in ("train", "test")):
            return folder
    raise LandmarkError(f"no train/*_volume.nrrd or test/*_volume.nrrd under {source_dir}: is this the "
                        f"mmld_dataset folder (train/, val/, test/ with *_volume.nrrd, *_label.npy, *_spacing.npy)?")


def _load(path: str, shape: Tuple[int, ...]) -> np.ndarray:
    if not os.path.isfile(path):
        raise LandmarkError(f"{path} is missing (each *_volume.nrrd needs a *_label.npy and a *_spacing.npy)")
    try:
        array = np.asarray(np.load(path, allow_pickle=False), dtype=float)
    except (OSError, ValueError) as e:
        raise LandmarkError(f"{path} is not a readable numeric .npy file ({type(e).__name__}: {e})") from None
    if array.shape != shape:
        raise LandmarkError(f"{path} has shape {array.shape}, expected {shape}")
    return array


def present_rows(label: np.ndarray) -> np.ndarray:
    """Which rows of a (14, 3) label array hold a landmark: finite with a positive mean (official metric's test;
    the distribution marks absent landmarks with very negative values)."""
    finite = np.all(np.isfinite(label), axis=1)
    return finite & (np.where(finite[:, None], label, 0).mean(axis=1) > 0)


def _case_id(stem: str) -> str:
    case = _BAD_ID_CHARS.sub("_", stem)
    return case if case[:1].isalnum() else f"mml{case}"


def _spacing_fixed(volume: str, spacing: np.ndarray, scratch_dir: Optional[str], case: str) -> Optional[str]:
    """None when the NRRD header spacing equals _spacing.npy, else the path of a copy with the _spacing.npy spacing."""
    reader = read_image_header(volume)
    if np.allclose(reader.GetSpacing(), spacing, rtol=1e-4, atol=1e-5):
        return None
    if scratch_dir is None:
        raise LandmarkError(f"{volume} has spacing {list(reader.GetSpacing())} in its header but "
                            f"{list(spacing)} in its _spacing.npy: pass scratch_dir to write a corrected copy")
    image = sitk.ReadImage(volume)
    image.SetSpacing([float(s) for s in spacing])
    target = join(scratch_dir, f"{case}.nii.gz")
    sitk.WriteImage(image, target, useCompression=True)
    return target


def collect_cases(source_dir: str, scratch_dir: Optional[str] = None, complete_only: bool = True,
                  include_val: bool = False) -> Tuple[List[CaseSource], List[str]]:
    """Cases of train/ (and val/ with include_val) and test/, the complete ones only unless complete_only=False
    (then absent landmarks are recorded as missing); returns them with the IDs of the test/ cases. Images whose
    header spacing disagrees with _spacing.npy are re-written into scratch_dir (required then)."""
    folder = _dataset_folder(source_dir)
    cases, test, seen, fixed = [], [], {}, []
    for split in [s for s in SPLITS if include_val or s != "val"]:
        for volume in sorted(glob.glob(join(folder, split, "*_volume.nrrd"))):
            stem = basename(volume)[:-len("_volume.nrrd")]
            label = _load(join(folder, split, f"{stem}_label.npy"), (len(LANDMARKS), 3))
            spacing = _load(join(folder, split, f"{stem}_spacing.npy"), (3,))
            present = present_rows(label)
            if complete_only and not present.all():
                continue
            case = _case_id(stem)
            if case in seen:
                raise LandmarkError(f"case ID '{case}' of {volume} is also that of {seen[case]}")
            seen[case] = volume
            if not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
                raise LandmarkError(f"{join(folder, split, stem + '_spacing.npy')} holds {spacing.tolist()}, "
                                    f"not three positive spacings")
            image = _spacing_fixed(volume, spacing, scratch_dir, case)
            if image is not None:
                fixed.append(case)
            cases.append(CaseSource(
                case=case, images=[image or volume], coordinate_system="voxel",
                landmarks={n: label[i].tolist() for i, n in enumerate(LANDMARKS) if present[i]},
                source=join(folder, split, f"{stem}_label.npy"),
                missing=[n for i, n in enumerate(LANDMARKS) if not present[i]]))
            if split == "test":
                test.append(case)
    if not cases:
        raise LandmarkError(f"no {'complete ' if complete_only else ''}cases in {join(folder, 'train')} or "
                            f"{join(folder, 'test')}")
    if fixed:
        warnings.warn(f"{len(fixed)} MML volume(s) have another spacing in their NRRD header than in _spacing.npy "
                      f"({', '.join(fixed[:3])}{', ...' if len(fixed) > 3 else ''}); converted with the "
                      f"_spacing.npy spacing", ConversionWarning)
    return cases, test


def convert(source_dir: str, raw_root: str, dataset_id: int = DEFAULT_ID, name: str = DEFAULT_NAME,
            overwrite: bool = False, complete_only: bool = True, include_val: bool = False) -> str:
    """mmld_dataset -> ``raw_root/Dataset802_MML``: complete cases of train/ (imagesTr) and test/ (imagesTs)."""
    os.makedirs(raw_root, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".mml_spacing_", dir=raw_root) as scratch:
        cases, test = collect_cases(source_dir, scratch, complete_only=complete_only, include_val=include_val)
        description = (DATASET_INFO["description"]
                       + ("complete-annotation subset" if complete_only else "all cases, absent landmarks null")
                       + ("; val cases in training" if include_val else "; val cases left out"))
        return write_benchmark_dataset(sys.modules[__name__], cases, test, raw_root, dataset_id, name, overwrite,
                                       description=description)
