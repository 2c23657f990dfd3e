"""PDDCA 1.4.1 (head-and-neck CT, 5 bony landmarks) -> nnU-Net raw dataset.

Expected layout: the three archives PDDCA-1.4.1_part{1,2,3}.zip from https://www.imagenglab.com/newsite/pddca/
unpacked (merged into one folder, or side by side)::

    PDDCA-1.4.1/                    <- pass this folder (or the folder holding PDDCA-1.4.1_part1/, _part2/, ...)
    ├── 0522c0001/
    │   ├── img.nrrd                CT volume
    │   ├── Landmarks_0001.fcsv     5 bony landmarks (3D Slicer fcsv, CoordinateSystem = 0, i.e. RAS)
    │   └── structures/             organ masks (BrainStem.nrrd, Mandible.nrrd, ...; not used here)
    ├── 0522c0002/
    └── ...                         48 case folders, of which the 33 of the challenge training parts
                                    (0522c0001..0522c0479) carry a landmark file

The landmark file is found as the one ``*.fcsv`` in the case folder (``Landmarks_*.fcsv`` preferred); its label
column names the landmarks ``chin``, ``mand_l``, ``mand_r`` (left/right mandibular condyle), ``occ_bone``
(occipital bone) and ``odont_proc`` (odontoid process), matched case-insensitively. ``LANDMARKS`` keeps them in
sorted order, the order of the paper's Table 8 (and of the reference implementation's labels). Case folders without
a landmark file are skipped. Layout and names from MIC-DKFZ/nnLandmark (Dataset740_PDDCA conversion scripts) and
public code reading ``0522cXXXX/Landmarks_0001.fcsv``.

Split: the paper's random 26/7 split is not public; ``splits/pddca.json`` ships a seeded substitute (7 test cases of
the 33, chosen by sha256 rank, see its "source" field). Cases listed there go to imagesTs, all others to imagesTr.

Licence/citation: PDDCA is offered "to the community" without a formal licence by G. C. Sharp's group (MGH); cite
Raudaschl et al. 2017, "Evaluation of segmentation methods on head and neck CT: Auto-segmentation challenge 2015",
Medical Physics 44(5):2020-2036. The images stem from the RTOG 0522 trial.
"""
import filecmp
import glob
import os
import sys
from os.path import basename, dirname, isdir, isfile, join
from typing import Dict, List, Tuple

from nnlandmark.dataset_conversion.benchmarks import shipped_test_cases, split_file, write_benchmark_dataset
from nnlandmark.dataset_conversion.dataset_writer import CaseSource
from nnlandmark.errors import LandmarkError
from nnlandmark.io.landmark_files import read_fcsv

DEFAULT_NAME = "PDDCA"
DEFAULT_ID = 803
CHANNEL = "CT"
DATASET_INFO = {
    "description": "PDDCA 1.4.1: 5 bony landmarks on head-and-neck CT; seeded 26/7 substitute split "
                   "(splits/pddca.json), not the paper's case list",
    "reference": "Raudaschl et al. 2017, Medical Physics 44(5):2020-2036",
    "licence": "no formal licence; public domain database by G. C. Sharp et al. (MGH), cite the reference"}
LANDMARKS = ("chin", "mand_l", "mand_r", "occ_bone", "odont_proc")
IMAGE = "img.nrrd"
SPLIT_FILE = split_file("pddca")



def _case_folders(source_dir: str) -> List[str]:
    """Folders holding img.nrrd: source_dir itself, its children or grandchildren (unpacked part folders)."""
    if not isdir(source_dir):
        raise LandmarkError(f"{source_dir} is not a folder")
    if isfile(join(source_dir, IMAGE)):
        return [source_dir]
    for depth in ("*", join("*", "*")):
        found = sorted(dirname(p) for p in glob.glob(join(source_dir, depth, IMAGE)))
        if found:
            return found
    raise LandmarkError(f"no case folders with {IMAGE} (0522cXXXX/{IMAGE}) under {source_dir}: is this the "
                        f"unpacked PDDCA-1.4.1 folder?")


def _landmark_file(folder: str):
    files = sorted(glob.glob(join(folder, "*.fcsv")))
    if len(files) > 1:
        files = [f for f in files if basename(f).lower().startswith("landmarks")] or files
    if len(files) > 1:
        raise LandmarkError(f"{len(files)} landmark files in {folder}, expected one (Landmarks_0001.fcsv): "
                            f"{', '.join(basename(f) for f in files)}")
    return files[0] if files else None


def _read_case(folder: str, fcsv: str) -> CaseSource:
    points = {}
    for label, xyz in read_fcsv(fcsv).items():  # world LPS (the files say RAS; read_fcsv converts)
        name = label.strip().lower()
        if name not in LANDMARKS:
            raise LandmarkError(f"{fcsv}: landmark '{label}' is not one of the PDDCA landmarks {', '.join(LANDMARKS)}")
        if name in points:
            raise LandmarkError(f"{fcsv}: landmark '{name}' appears twice")
        points[name] = [float(v) for v in xyz]
    return CaseSource(case=basename(os.path.normpath(folder)), images=[join(folder, IMAGE)], landmarks=points,
                      coordinate_system="LPS", source=fcsv, missing=[n for n in LANDMARKS if n not in points])


def collect_cases(source_dir: str) -> Tuple[List[CaseSource], List[str]]:
    """Every case folder with a landmark file, and the test case IDs of ``splits/pddca.json`` among them."""
    folders = _case_folders(source_dir)
    cases: Dict[str, CaseSource] = {}
    for folder in folders:
        fcsv = _landmark_file(folder)
        if fcsv is None:
            continue
        case = _read_case(folder, fcsv)
        if case.case in cases:  # the same case unpacked twice (part folders side by side)
            if filecmp.cmp(cases[case.case].source, fcsv, shallow=False):
                continue
            raise LandmarkError(f"case {case.case} appears twice with different landmarks: "
                                f"{cases[case.case].source} and {fcsv}")
        cases[case.case] = case
    if not cases:
        raise LandmarkError(f"none of the {len(folders)} case folders under {source_dir} holds a landmark file "
                            f"(Landmarks_0001.fcsv); PDDCA 1.4.1 has one in the 33 cases 0522c0001..0522c0479")
    return [cases[c] for c in sorted(cases)], shipped_test_cases("pddca", cases, source_dir)


def convert(source_dir: str, raw_root: str, dataset_id: int = DEFAULT_ID, name: str = DEFAULT_NAME,
            overwrite: bool = False) -> str:
    """PDDCA-1.4.1 -> ``raw_root/Dataset803_PDDCA`` (CT channel, 5 labels, the 7 test cases of splits/pddca.json)."""
    return write_benchmark_dataset(sys.modules[__name__], *collect_cases(source_dir), raw_root, dataset_id, name,
                                   overwrite)
