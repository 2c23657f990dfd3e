"""LFC (fetal brain T2 MRI, 12 landmarks = endpoints of 6 biometric measurements) -> nnU-Net raw dataset.

The Fetal Cerebellum Landmark Detection data of Gong et al. (JBHI 2025, AAAI 2025 "DGMLD"), distributed as the
Google Drive folder linked from github.com/lhaof/DGMLD. Expected layout (the one the authors' data loaders read,
``{root}{mode}/{case}.nii.gz`` and ``{root}{mode}_label/{case}/*.mrk.json``, and the reference implementation's
Dataset737_DMGLD_LFC scripts)::

    dataset/                      <- pass this folder (or the one holding it); atlas/ and feta21/, the authors'
                                     pre-training and out-of-domain sets, may lie beside train/ and are not used
    ├── train/                    the 120 training cases
    │   ├── 1.nii.gz              T2 volume, named by the case number
    │   └── ...
    ├── train_label/
    │   ├── 1/                    one 3D Slicer Line markup per measurement, numbered 1..6
    │   │   ├── 1.mrk.json        (the number is the last "_"-separated part of the name before the first ".",
    │   │   ├── ...                e.g. 1.mrk.json or L_1.mrk.json)
    │   │   └── 6.mrk.json
    │   └── ...
    ├── valid/                    the 60 test cases (a folder named test/ is taken as well)
    └── valid_label/

Measurements 1..6 are, in the authors' order ``['CBD', 'BBD', 'TCD', 'FOD', 'HDV', 'ADV']``: cerebral (brain)
biparietal diameter, bone (skull) biparietal diameter, transverse cerebellar diameter, fronto-occipital diameter,
height and anteroposterior diameter of the vermis -- the paper's bBIP, sBIP, TCD, OFD, HDV, ADV (Tables 12-13),
whose names the landmarks take here: ``bBIP_1, bBIP_2, sBIP_1, ..., ADV_2`` (labels 1..12 in this order, like the
reference's ``landmark_<measurement>_<point>``). ``_1``/``_2`` are the line's first and second control point (its
beginning and end, "1" and "2" in the authors' tables). Positions are world millimetres in the markup's
``coordinateSystem`` (LPS or RAS). A missing measurement file or undefined control point leaves its landmarks
absent (null), named in a warning; the authors' loaders skip cases without exactly six files instead. If the files
of a case are not numbered within 1..6 but there are exactly six, they are taken in the order of their numbers.

Case IDs are ``<split folder>_<case number>`` (``train_1``, ``valid_1``) so that the two folders cannot collide.
Split: the official one of the layout (paper: 120 train / 60 test): train/ -> imagesTr, valid/ (or test/) ->
imagesTs; no case list is shipped.

Licence/citation: no licence is stated with the data; use it for research and cite Gong et al. 2025, "Fetal
cerebellum landmark detection based on 3D MRI: method and benchmark", IEEE JBHI 29(8):5712-5721,
doi:10.1109/JBHI.2025.3559702, and Gong et al. 2025, "Domain generalized medical landmark detection via robust
boundary-aware pre-training", AAAI 39(3):3140-3148.
"""
import glob
import re
import sys
import warnings
from os.path import basename, isdir, isfile, join
from typing import Dict, List, Optional, Tuple

import numpy as np

from nnlandmark.dataset_conversion.benchmarks import write_benchmark_dataset
from nnlandmark.dataset_conversion.dataset_writer import CaseSource, ConversionWarning
from nnlandmark.errors import LandmarkError
from nnlandmark.io.landmark_files import markup_control_points, read_markups

DEFAULT_NAME = "LFC"
DEFAULT_ID = 805
CHANNEL = "T2"
DATASET_INFO = {
    "description": "LFC fetal brain T2 MRI, 12 landmarks = the two ends (first, second control point) of 6 "
                   "biometric lines; official split: train/ -> imagesTr, valid/ -> imagesTs",
    "reference": "Gong et al. 2025, IEEE JBHI 29(8):5712-5721, doi:10.1109/JBHI.2025.3559702; Gong et al. "
                 "2025, AAAI 39(3):3140-3148 (DGMLD)",
    "licence": "none stated by the distributors; research use, cite the references"}
TRAIN_SPLIT = "train"
TEST_SPLITS = ("valid", "test")
# measurement number -> (landmark prefix, measurement, the authors' abbreviation)
MEASUREMENTS = {
    1: ("bBIP", "brain (cerebral) biparietal diameter", "CBD"),
    2: ("sBIP", "skull (bone) biparietal diameter", "BBD"),
    3: ("TCD", "transverse cerebellar diameter", "TCD"),
    4: ("OFD", "occipitofrontal diameter", "FOD"),
    5: ("HDV", "height of the vermis", "HDV"),
    6: ("ADV", "anteroposterior diameter of the vermis", "ADV"),
}
LANDMARKS = tuple(f"{prefix}_{k}" for prefix, *_ in MEASUREMENTS.values() for k in (1, 2))
BIOMETRY_PAIRS = [(f"{prefix}_1", f"{prefix}_2") for prefix, *_ in MEASUREMENTS.values()]
BIOMETRY_NAMES = {f"{prefix}_1:{prefix}_2": f"{name} ({abbr})" for prefix, name, abbr in MEASUREMENTS.values()}
_NUMBER = re.compile(r"(\d+)$")


def _image(split_dir: str, case: str) -> Optional[str]:
    return next((p for p in (join(split_dir, case + e) for e in (".nii.gz", ".nii")) if isfile(p)), None)


def _numbered_files(folder: str) -> Dict[int, str]:
    """measurement number -> markup file of one case folder."""
    files = sorted(glob.glob(join(folder, "*.mrk.json")))
    if not files:
        raise LandmarkError(f"{folder}: no markup files (expected 1.mrk.json .. 6.mrk.json, one line per measurement)")
    numbers = {}
    for path in files:
        match = _NUMBER.search(basename(path).split(".")[0].split("_")[-1])
        if not match:
            raise LandmarkError(f"{path}: no measurement number in the file name (expected 1.mrk.json .. 6.mrk.json)")
        number = int(match.group(1))
        if number in numbers:
            raise LandmarkError(f"{folder}: two markup files for measurement {number}: {basename(numbers[number])} "
                                f"and {basename(path)}")
        numbers[number] = path
    if set(numbers) <= set(MEASUREMENTS):
        return numbers
    if len(numbers) == len(MEASUREMENTS):
        return {k: numbers[n] for k, n in zip(sorted(MEASUREMENTS), sorted(numbers))}
    raise LandmarkError(f"{folder}: markup files numbered {sorted(numbers)}; expected one per measurement, numbered "
                        f"1..6 ({', '.join(m[2] for m in MEASUREMENTS.values())})")


def _read_line(path: str) -> List[Optional[np.ndarray]]:
    """The two control points of a Slicer Line markup in world LPS mm (None where undefined)."""
    markups = read_markups(path)
    if len(markups) != 1:
        raise LandmarkError(f"{path} is not a Slicer markups file with one markup (a Line)")
    points = markup_control_points(markups[0], path)
    if len(points) != 2:
        raise LandmarkError(f"{path}: {len(points)} control points, a measurement line has 2")
    return [point for _, point in points]


def _read_case(split: str, split_dir: str, folder: str, notes: List[str]) -> CaseSource:
    number = basename(folder)
    image = _image(split_dir, number)
    if image is None:
        raise LandmarkError(f"{folder}: its image {join(split_dir, number + '.nii.gz')} does not exist")
    case = f"{split}_{number}"
    files = _numbered_files(folder)
    landmarks, missing = {}, []
    for k, (prefix, *_) in MEASUREMENTS.items():
        names = (f"{prefix}_1", f"{prefix}_2")
        if k not in files:
            missing += names
            notes.append(f"{case} {prefix} (no file {k}.mrk.json)")
            continue
        for name, point in zip(names, _read_line(files[k])):
            if point is None:
                missing.append(name)
                notes.append(f"{case} {name} (undefined in {basename(files[k])})")
            else:
                landmarks[name] = point.tolist()
    return CaseSource(case=case, images=[image], landmarks=landmarks, coordinate_system="LPS",
                      source=folder, missing=missing)


def _split_cases(root: str, split: str, notes: List[str]) -> List[CaseSource]:
    split_dir, label_dir = join(root, split), join(root, f"{split}_label")
    if not isdir(label_dir):
        raise LandmarkError(f"{split} images without their landmark folder {label_dir}")
    folders = sorted((f for f in glob.glob(join(label_dir, "*")) if isdir(f)),
                     key=lambda f: (0, int(basename(f))) if basename(f).isdigit() else (1, basename(f)))
    if not folders:
        raise LandmarkError(f"no case folders in {label_dir} (expected {split}_label/<case>/1.mrk.json .. 6.mrk.json)")
    annotated = {basename(f) for f in folders}
    unlabelled = sorted(p for p in glob.glob(join(split_dir, "*.nii*"))
                        if basename(p).split(".")[0] not in annotated)
    if unlabelled:
        warnings.warn(f"{len(unlabelled)} image(s) in {split_dir} have no landmark folder in {label_dir} and are left "
                      f"out: {', '.join(basename(p) for p in unlabelled[:5])}{', ...' if len(unlabelled) > 5 else ''}",
                      ConversionWarning)
    return [_read_case(split, split_dir, folder, notes) for folder in folders]


def collect_cases(source_dir: str) -> Tuple[List[CaseSource], List[str]]:
    """Every case folder of train_label/ and valid_label/ (or test_label/); the latter are the test cases."""
    if not isdir(source_dir):
        raise LandmarkError(f"{source_dir} is not a folder")
    if not isdir(join(source_dir, TRAIN_SPLIT)) and isdir(join(source_dir, "dataset", TRAIN_SPLIT)):
        source_dir = join(source_dir, "dataset")
    if not isdir(join(source_dir, TRAIN_SPLIT)):
        raise LandmarkError(f"no {TRAIN_SPLIT}/ folder in {source_dir}: pass the unpacked LFC dataset folder holding "
                            f"train/, train_label/, valid/ and valid_label/")
    notes: List[str] = []
    cases = _split_cases(source_dir, TRAIN_SPLIT, notes)
    test: List[str] = []
    for split in TEST_SPLITS:
        if isdir(join(source_dir, split)):
            split_cases = _split_cases(source_dir, split, notes)
            cases += split_cases
            test += [c.case for c in split_cases]
    if not test:
        warnings.warn(f"no valid/ (or test/) folder in {source_dir}: every case is a training case, the benchmark's "
                      f"60 test cases are missing", ConversionWarning)
    if notes:
        warnings.warn(f"{len(notes)} LFC landmark annotation(s) missing, recorded as absent: "
                      f"{', '.join(notes[:5])}{', ...' if len(notes) > 5 else ''}", ConversionWarning)
    return cases, test


def convert(source_dir: str, raw_root: str, dataset_id: int = DEFAULT_ID, name: str = DEFAULT_NAME,
            overwrite: bool = False) -> str:
    """LFC_dataset -> ``raw_root/Dataset805_LFC`` (T2 channel, 12 labels, valid/ as the test cases)."""
    return write_benchmark_dataset(sys.modules[__name__], *collect_cases(source_dir), raw_root, dataset_id, name,
                                   overwrite)
