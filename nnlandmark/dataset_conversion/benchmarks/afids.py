"""AFIDs (anatomical fiducials, 32 brain landmarks on T1w MRI) -> nnU-Net raw dataset.

Expected layout: the afids-data DataLad super-dataset (https://github.com/afids/afids-data, ``datalad install``
then ``datalad get -r .``), four BIDS datasets whose ``derivatives/afids_groundtruth`` hold the consensus AFIDs::

    afids-data/data/datasets/              <- pass this folder (afids-data/ or a single dataset folder work too)
    ├── AFIDs-HCP/      (n=30, github.com/afids/AFIDs-HCP)
    │   ├── sub-103111/anat/sub-103111_T1w.nii.gz
    │   └── derivatives/afids_groundtruth/sub-103111/anat/sub-103111_space-T1w_desc-groundtruth_afids.fcsv
    ├── AFIDs-OASIS/    (n=30, github.com/afids/AFIDs-OASIS)
    ├── LHSCPD/         (n=40, OpenNeuro ds004471)  sub-093/anat/sub-093_run-01_T1w.nii.gz
    └── SNSX/           (n=32, OpenNeuro ds004470)  sub-C004/anat/sub-C004_acq-MP2RAGE_run-01_T1w.nii.gz
                        + derivatives/afids_groundtruth/sub-C004/anat/
                          sub-C004_acq-MP2RAGE_run-01_space-T1w_desc-groundtruth_afids.fcsv

Landmark files are Slicer fcsv version 4.6, ``CoordinateSystem = 0`` (RAS), one row per AFID with the AFID number
(1..32) in the ``label`` column and its name in ``desc`` (afids/afids-utils ``resources/template.fcsv``). Rows are
mapped by number to ``LANDMARKS`` (the protocol names, so rater spelling of ``desc`` does not matter); a row with
non-finite coordinates is recorded as missing. ``derivatives/afids_rater`` (single raters) is ignored. Case IDs are
``<dataset folder>_<sub-ID>`` as in the reference implementation (MIC-DKFZ/nnLandmark), e.g.
``AFIDs-HCP_sub-103111``; the OpenNeuro folder names ds004470/ds004471 are renamed SNSX/LHSCPD.

Split: the paper uses "a random split stratified across the four subsets into 110 training and 22 test cases"; that
case list is not public (MIC-DKFZ/nnLandmark ships no split file for AFIDs). This converter therefore makes its own
seeded, stratified split: 22/132 of the cases go to test, distributed over the subsets by largest remainder
(full release: HCP 5, OASIS 5, LHSCPD 7, SNSX 5 -> 22 test, 110 train), and within each subset the cases with the
lowest sha256(f"{SPLIT_SEED}:{case}") are chosen -- independent of platform, Python version and of which other
cases are present. Results on it are comparable to the paper's in distribution only, not case by case.

Licence/citation: the AFIDs annotations and the LHSCPD and SNSX images are CC BY 4.0; the HCP and OASIS-1 images
are under their data use agreements, which you must accept before downloading. Cite Taha et al. 2023 (Scientific
Data 10:449) and Abbass et al. 2022 (Brain Structure and Function), plus Lau et al. 2023 (SNSX), Abbass et al. 2023
(LHSCPD), and acknowledge HCP (Van Essen et al. 2012) and OASIS-1 (Marcus et al. 2007) as their terms require.
"""
import glob
import hashlib
import os
import re
import sys
from os.path import basename, isdir, join
from typing import Dict, List, Optional, Tuple

import numpy as np

from nnlandmark.dataset_conversion.benchmarks import write_benchmark_dataset
from nnlandmark.dataset_conversion.dataset_writer import CaseSource
from nnlandmark.errors import LandmarkError
from nnlandmark.io.landmark_files import read_fcsv_rows

DEFAULT_NAME = "AFIDs"
DEFAULT_ID = 801
SPLIT_SEED = 12345
PAPER_TEST_FRACTION = (22, 132)  # 22 test of 132 cases (paper §3.2)
CHANNEL = "T1"
DATASET_INFO = {
    "description": "AFIDs: 32 anatomical fiducials on T1w MRI (AFIDs-HCP, AFIDs-OASIS, LHSCPD, SNSX); "
                   f"seeded stratified test split (seed {SPLIT_SEED}), not the paper's case list",
    "reference": "Taha et al. 2023, Scientific Data 10:449; Abbass et al. 2022, Brain Struct Funct",
    "licence": "annotations, LHSCPD and SNSX: CC BY 4.0; HCP and OASIS-1 images: their data use terms"}

# AFID 1..32, named after the protocol descriptions (afids-utils template.fcsv), spaces -> "_".
LANDMARKS = (
    "AC", "PC", "infracollicular_sulcus", "PMJ", "superior_interpeduncular_fossa",
    "R_superior_LMS", "L_superior_LMS", "R_inferior_LMS", "L_inferior_LMS", "culmen",
    "intermammillary_sulcus", "R_MB", "L_MB", "pineal_gland", "R_LV_at_AC", "L_LV_at_AC",
    "R_LV_at_PC", "L_LV_at_PC", "genu_of_CC", "splenium", "R_AL_temporal_horn", "L_AL_temporal_horn",
    "R_superior_AM_temporal_horn", "L_superior_AM_temporal_horn", "R_inferior_AM_temporal_horn",
    "L_inferior_AM_temporal_horn", "R_indusium_griseum_origin", "L_indusium_griseum_origin",
    "R_ventral_occipital_horn", "L_ventral_occipital_horn", "R_olfactory_sulcal_fundus",
    "L_olfactory_sulcal_fundus",
)
SUBSET_ALIASES = {"ds004470": "SNSX", "ds004471": "LHSCPD"}
GROUNDTRUTH = join("derivatives", "afids_groundtruth")
_BY_DESC = {name.lower().replace("_", " "): number for number, name in enumerate(LANDMARKS, start=1)}
_TRAILING_NUMBER = re.compile(r"^(?:vtkMRMLMarkupsFiducialNode_)?(\d+)$")


def _exists(path: str, what: str) -> str:
    """DataLad leaves files it has not fetched as broken symlinks into .git/annex: say so."""
    if os.path.islink(path) and not os.path.exists(path):
        raise LandmarkError(f"{what} {path} is a DataLad/git-annex placeholder without content: run "
                            f"'datalad get' on it (or 'datalad get -r .' in afids-data)")
    return path


def _afid_number(fields: List[str], where: str) -> int:
    """The AFID number of an fcsv row: a number 1..32 in the label column, else an AFIDs protocol name in desc or
    label, else a numeric id (``vtkMRMLMarkupsFiducialNode_N`` with N = 1..32)."""
    number = _number(fields[11])
    for value in (fields[12], fields[11]):
        if number is None:
            number = _BY_DESC.get(value.strip().lower().replace("_", " "))
    if number is None:
        number = _number(fields[0])
    if number is not None:
        return number
    raise LandmarkError(f"{where}: row '{fields[0]}' is no AFID: label '{fields[11]}' is not a number 1..32 and "
                        f"desc '{fields[12]}' no AFIDs protocol name")


def _number(value: str) -> Optional[int]:
    match = _TRAILING_NUMBER.match(value.strip())
    return int(match.group(1)) if match and 1 <= int(match.group(1)) <= len(LANDMARKS) else None


def read_afids_fcsv(path: str) -> Tuple[Dict[str, Tuple[float, float, float]], str, List[str]]:
    """AFIDs fcsv -> ({LANDMARKS name: (x, y, z)} in the file's system, "RAS" or "LPS", [names without position])."""
    _exists(path, "landmark file")
    fcsv = read_fcsv_rows(path, max_fields=None)
    points, missing = {}, []
    for where, fields in fcsv.rows:
        name = LANDMARKS[_afid_number(fields, where) - 1]
        if name in points or name in missing:
            raise LandmarkError(f"{where}: AFID '{name}' appears twice")
        try:
            xyz = tuple(float(v) for v in fields[1:4])
        except ValueError:
            raise LandmarkError(f"{where}: position {fields[1:4]} is not three numbers") from None
        if all(np.isfinite(xyz)):
            points[name] = xyz
        else:
            missing.append(name)
    if not points and not missing:
        raise LandmarkError(f"{path} holds no AFIDs rows")
    missing += [n for n in LANDMARKS if n not in points and n not in missing]
    return points, fcsv.system or "RAS", missing  # AFIDs files are RAS, whether the header says so or not


def _is_template(relative: str) -> bool:
    """afids-data/data/templates/tpl-* hold AFIDs of brain templates, not subjects."""
    parts = relative.split(os.sep)
    return "templates" in parts or any(p.startswith("tpl-") for p in parts)


def _dataset_folders(source_dir: str) -> List[str]:
    """BIDS dataset folders (those with derivatives/afids_groundtruth) at or below source_dir (depth <= 3), without
    the template folders of afids-data."""
    if not isdir(source_dir):
        raise LandmarkError(f"{source_dir} is not a folder")
    if isdir(join(source_dir, GROUNDTRUTH)):
        return [source_dir]
    found = []
    for depth in ("*", join("*", "*"), join("*", "*", "*")):
        found = sorted(p for p in glob.glob(join(source_dir, depth)) if isdir(join(p, GROUNDTRUTH))
                       and not _is_template(os.path.relpath(p, source_dir)))
        if found:
            break
    if not found:
        raise LandmarkError(f"no sub-*/ folders with *_afids.fcsv under {join(source_dir, '*', GROUNDTRUTH)}: is "
                            f"{source_dir} the afids-data/data/datasets folder (AFIDs-HCP, AFIDs-OASIS, LHSCPD, SNSX)?")
    return found


def _image_for(dataset: str, subject: str, fcsv: str) -> str:
    """The T1w NIfTI of a subject: same BIDS entities as the fcsv, else the only *_T1w.nii[.gz] of anat/."""
    anat = join(dataset, subject, "anat")
    candidates = sorted(p for p in glob.glob(join(anat, "*_T1w.nii*")) if p.endswith((".nii", ".nii.gz")))
    entities = basename(fcsv).split("_space-")[0] if "_space-" in basename(fcsv) else subject
    exact = [p for p in candidates if basename(p).split("_T1w.nii")[0] == entities]
    if len(exact) == 1:
        return _exists(exact[0], "image")
    if len(candidates) == 1:
        return _exists(candidates[0], "image")
    if not candidates:
        raise LandmarkError(f"no T1w image (*_T1w.nii.gz) in {anat} for landmark file {fcsv}")
    raise LandmarkError(f"{len(candidates)} T1w images in {anat} and none named like {entities}_T1w.nii.gz "
                        f"for {fcsv}: {', '.join(basename(p) for p in candidates)}")


def _stable_rank(case: str, seed: int = SPLIT_SEED) -> str:
    return hashlib.sha256(f"{seed}:{case}".encode()).hexdigest()


def stratified_test_cases(subset_of: Dict[str, str], fraction: Tuple[int, int] = PAPER_TEST_FRACTION,
                          seed: int = SPLIT_SEED) -> List[str]:
    """Test cases: round(N * fraction) overall, spread over subsets by largest remainder (ties by subset name),
    within a subset the cases of lowest sha256(f"{seed}:{case}"). At least one case per subset stays in training."""
    n = len(subset_of)
    n_test = int(np.floor(n * fraction[0] / fraction[1] + 0.5))
    groups: Dict[str, List[str]] = {}
    for case, subset in sorted(subset_of.items()):
        groups.setdefault(subset, []).append(case)
    quota = {s: n_test * len(c) / n for s, c in groups.items()}
    counts = {s: int(np.floor(q)) for s, q in quota.items()}
    for s in sorted(groups, key=lambda s: (-(quota[s] - counts[s]), s))[:n_test - sum(counts.values())]:
        counts[s] += 1
    test = []
    for subset, cases in sorted(groups.items()):
        k = min(counts[subset], len(cases) - 1)
        test += sorted(cases, key=lambda c: _stable_rank(c, seed))[:k]
    return sorted(test)


def collect_cases(source_dir: str) -> Tuple[List[CaseSource], List[str]]:
    """All subjects with a ground-truth AFIDs file under source_dir, and the test case IDs (see module doc)."""
    datasets = _dataset_folders(source_dir)
    cases, subset_of = [], {}
    for dataset in datasets:
        subset = SUBSET_ALIASES.get(basename(os.path.normpath(dataset)), basename(os.path.normpath(dataset)))
        by_subject: Dict[str, List[str]] = {}
        for path in sorted(glob.glob(join(dataset, GROUNDTRUTH, "sub-*", "anat", "*_afids.fcsv"))):
            by_subject.setdefault(path.split(os.sep)[-3], []).append(path)
        for subject, paths in sorted(by_subject.items()):
            if len(paths) > 1:
                paths = [p for p in paths if "desc-groundtruth" in basename(p)] or paths
            if len(paths) > 1:
                raise LandmarkError(f"{len(paths)} ground-truth AFIDs files in "
                                    f"{join(dataset, GROUNDTRUTH, subject, 'anat')}: "
                                    f"{', '.join(basename(p) for p in paths)}")
            points, system, missing = read_afids_fcsv(paths[0])
            case = f"{subset}_{subject}"
            if case in subset_of:
                raise LandmarkError(f"two datasets named {subset} under {source_dir} both hold {subject}")
            cases.append(CaseSource(case=case, images=[_image_for(dataset, subject, paths[0])], landmarks=points,
                                    coordinate_system=system, source=paths[0], missing=missing))
            subset_of[case] = subset
    if not cases:
        raise LandmarkError(f"no sub-*/anat/*_afids.fcsv in {join(datasets[0], GROUNDTRUTH)}"
                            f"{' (and the other datasets)' if len(datasets) > 1 else ''}: is this the afids-data "
                            f"derivatives folder, with its files fetched ('datalad get -r .')?")
    return cases, stratified_test_cases(subset_of)


def convert(source_dir: str, raw_root: str, dataset_id: int = DEFAULT_ID, name: str = DEFAULT_NAME,
            overwrite: bool = False) -> str:
    """afids-data -> ``raw_root/Dataset801_AFIDs`` (T1w channel, 32 labels in AFID order, stratified test split)."""
    return write_benchmark_dataset(sys.modules[__name__], *collect_cases(source_dir), raw_root, dataset_id, name,
                                   overwrite)
