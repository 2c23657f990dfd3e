"""The generic converter: a folder of images and a folder of landmark files (or a manifest) -> a raw dataset.

Images and landmark files pair by case name: the file name without its ending and, for images, without an
nnU-Net channel suffix (``case_0000.nii.gz``, ``case_0001.nii.gz`` are two channels of ``case``).
"""
import csv
import json
import os
import re
from os.path import dirname, isdir, isfile, join
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from nnlandmark.dataset_conversion.dataset_writer import CaseSource, write_landmark_dataset
from nnlandmark.errors import LandmarkError
from nnlandmark.io.images import IMAGE_ENDINGS
from nnlandmark.io.landmark_files import LANDMARK_FILE_ENDINGS, read_landmark_file

_CHANNEL = re.compile(r"^(.+)_(\d{4})$")


def _strip_ending(filename: str, endings: Sequence[str]) -> Optional[str]:
    lower = filename.lower()
    return next((filename[:-len(e)] for e in endings if lower.endswith(e) and len(filename) > len(e)), None)


def _listing(folder: str, what: str, endings: Sequence[str]) -> List[str]:
    """The visible files of ``folder``; a broken link with one of ``endings`` is an error, not a missing case."""
    if not isdir(folder):
        raise LandmarkError(f"{what}s folder {folder} does not exist")
    names = sorted(f for f in os.listdir(folder) if not f.startswith("."))
    for name in names:
        path = join(folder, name)
        if os.path.islink(path) and not os.path.exists(path) and _strip_ending(name, endings):
            raise LandmarkError(f"{what} {path} is a broken symbolic link (target {os.readlink(path)} missing): "
                                f"restore the target or remove the link")
    return [f for f in names if isfile(join(folder, f))]


def find_images(images_dir: str) -> Dict[str, List[str]]:
    """{case: [channel 0 path, channel 1 path, ...]} from image file names."""
    channels: Dict[str, Dict[int, str]] = {}
    plain: Dict[str, str] = {}
    for filename in _listing(images_dir, "image", IMAGE_ENDINGS):
        stem = _strip_ending(filename, IMAGE_ENDINGS)
        if stem is None:
            continue
        path = join(images_dir, filename)
        match = _CHANNEL.match(stem)
        if match:
            case, channel = match.group(1), int(match.group(2))
            if channel in channels.setdefault(case, {}):
                raise LandmarkError(f"duplicate case ID '{case}': {channels[case][channel]} and {path}")
            channels[case][channel] = path
        else:
            if stem in plain:
                raise LandmarkError(f"duplicate case ID '{stem}': {plain[stem]} and {path}")
            plain[stem] = path
    both = set(plain) & set(channels)
    if both:
        case = sorted(both)[0]
        raise LandmarkError(f"duplicate case ID '{case}': {plain[case]} and {channels[case][min(channels[case])]}")
    images = {case: [path] for case, path in plain.items()}
    for case, found in channels.items():
        if sorted(found) != list(range(len(found))):
            raise LandmarkError(f"case '{case}' in {images_dir} has channels {sorted(found)}; expected _0000 to "
                                f"_{len(found) - 1:04d} without gaps")
        images[case] = [found[c] for c in range(len(found))]
    if not images:
        raise LandmarkError(f"no images ({', '.join(IMAGE_ENDINGS)}) in {images_dir}")
    return dict(sorted(images.items()))


def find_landmark_files(landmarks_dir: str) -> Dict[str, str]:
    """{case: landmark file}; one file per case."""
    files: Dict[str, str] = {}
    for filename in _listing(landmarks_dir, "landmark", LANDMARK_FILE_ENDINGS):
        if filename == "dataset.json":
            continue
        case = _strip_ending(filename, LANDMARK_FILE_ENDINGS)
        if case is None:
            continue
        path = join(landmarks_dir, filename)
        if case in files:
            raise LandmarkError(f"duplicate case ID '{case}': {files[case]} and {path}")
        files[case] = path
    if not files:
        raise LandmarkError(f"no landmark files ({', '.join(LANDMARK_FILE_ENDINGS)}) in {landmarks_dir}")
    return files


def _pair(images: Dict[str, List[str]], landmark_files: Dict[str, str]) -> List[Tuple[str, List[str], str]]:
    for found, other, what in ((images, landmark_files, "image"), (landmark_files, images, "landmark file")):
        lonely = [c for c in found if c not in other]
        if lonely:
            examples = ", ".join(str(found[c][0] if isinstance(found[c], list) else found[c]) for c in lonely[:3])
            raise LandmarkError(f"{len(lonely)} {what}(s) without a partner of the same case name, e.g. {examples}")
    return [(case, images[case], landmark_files[case]) for case in images]


def _check_manifest_header(path: str, header: Sequence[str]) -> None:
    if len(header) == 1 and any(d in header[0] for d in ";\t"):
        separator = "';'" if ";" in header[0] else "tabs"
        raise LandmarkError(f"manifest {path} separates its columns with {separator}: separate them with ',' "
                            f"(case,image,landmarks; ';' separates only the channels within 'image')")
    if "landmarks" not in header or not {"image", "images"} & set(header):
        raise LandmarkError(f"manifest {path} has the columns {', '.join(header)}; it needs image (or images), "
                            f"landmarks and optionally case")


def read_manifest(path: str) -> List[Tuple[str, List[str], str]]:
    """CSV (``case,image,landmarks`` in any letter case; several channels as ``image`` = ``a.nii.gz;b.nii.gz``) or
    JSON (a list of ``{"case", "images" | "image", "landmarks"}``); relative paths are relative to the manifest."""
    base = dirname(os.path.abspath(path))
    is_json = path.lower().endswith(".json")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            if is_json:
                rows = json.load(f)
            else:
                reader = csv.DictReader(f)
                rows = list(reader)
                header = [str(c).strip().lower() for c in reader.fieldnames or ()]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, csv.Error) as e:
        raise LandmarkError(f"cannot read manifest {path} ({type(e).__name__}: {e})") from None
    if is_json and not isinstance(rows, list):
        raise LandmarkError(f"manifest {path} must be a JSON list of {{case, image, landmarks}} objects, not a "
                            f"{type(rows).__name__}")
    if not rows:
        raise LandmarkError(f"manifest {path} holds no rows")
    if not is_json:
        _check_manifest_header(path, header)
    entries = []
    for n, row in enumerate(rows, start=1):
        where = f"manifest {path} entry {n}"
        if isinstance(row, dict):
            row = {str(key).strip().lower(): value for key, value in row.items() if key is not None}
        if not isinstance(row, dict) or not row.get("landmarks") or not (row.get("image") or row.get("images")):
            raise LandmarkError(f"{where}: needs 'image' (or 'images') and 'landmarks'")
        images = row.get("images") or row.get("image")
        if not isinstance(images, (str, list)):
            raise LandmarkError(f"{where}: 'image' must be a path, or a list of paths (one per channel)")
        images = images.split(";") if isinstance(images, str) else images
        images = [join(base, str(p).strip()) for p in images]
        landmarks = join(base, str(row["landmarks"]).strip())
        case = str(row.get("case") or "").strip() or _strip_ending(os.path.basename(landmarks),
                                                                    LANDMARK_FILE_ENDINGS) or ""
        for file, what in [(p, "an image") for p in images] + [(landmarks, "a landmark")]:
            if isdir(file):
                raise LandmarkError(f"{where}: {file} is a folder, not {what} file")
            if not isfile(file):
                raise LandmarkError(f"{where}: {file} does not exist")
        entries.append((case, images, landmarks))
    return entries


def _read_test_cases(path: str) -> List[str]:
    """A text file with one case per line, or a JSON list."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise LandmarkError(f"cannot read test case list {path} ({type(e).__name__})") from None
    if path.lower().endswith(".json"):
        try:
            cases = json.loads(text)
        except json.JSONDecodeError as e:
            raise LandmarkError(f"test case list {path} is not valid JSON ({e})") from None
        if not isinstance(cases, list):
            raise LandmarkError(f"test case list {path} must be a JSON list of case IDs")
        return [str(c) for c in cases]
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def choose_test_cases(cases: Sequence[str], test_cases_file: Optional[str] = None,
                      test_fraction: Optional[float] = None, seed: int = 12345) -> List[str]:
    if test_cases_file is not None and test_fraction is not None:
        raise LandmarkError("give either --test-cases or --test-fraction, not both")
    if test_cases_file is not None:
        return _read_test_cases(test_cases_file)
    if test_fraction is None or test_fraction == 0:
        return []
    if not 0 < test_fraction < 1:
        raise LandmarkError(f"--test-fraction {test_fraction} must lie between 0 and 1")
    n_test = min(max(1, int(round(test_fraction * len(cases)))), len(cases) - 1)
    order = np.random.default_rng(seed).permutation(len(cases))
    return sorted(cases[i] for i in order[:n_test])


def convert(raw_root: str, dataset_id: int, name: str, images_dir: Optional[str] = None,
            landmarks_dir: Optional[str] = None, manifest: Optional[str] = None,
            coordinate_system: Optional[str] = None, test_cases_file: Optional[str] = None,
            test_fraction: Optional[float] = None, folds: Optional[int] = None, splits_file: Optional[str] = None,
            seed: int = 12345, overwrite: bool = False, may_be_absent: Optional[Sequence[str]] = None,
            multi_instance: Sequence[str] = (), pixel_spacing: Optional[Sequence[float]] = None) -> str:
    """The Python API behind ``nnLandmark_convert``; returns the written dataset folder. ``pixel_spacing`` (x, y mm)
    sets that of 2D images (PNG and JPEG carry none)."""
    if seed < 0:
        raise LandmarkError(f"--seed {seed} must be 0 or more")
    if manifest is not None:
        if images_dir or landmarks_dir:
            raise LandmarkError("give either a manifest or -i/-l folders, not both")
        entries = read_manifest(manifest)
    elif images_dir and landmarks_dir:
        entries = _pair(find_images(images_dir), find_landmark_files(landmarks_dir))
    else:
        raise LandmarkError("give -i IMAGES_DIR and -l LANDMARKS_DIR, or --manifest FILE")
    cases = []
    for case, images, landmark_file in entries:
        annotation = read_landmark_file(landmark_file, coordinate_system, multi_instance or ())
        cases.append(CaseSource(case, images, annotation.points, annotation.coordinate_system, landmark_file,
                                annotation.missing, annotation.instances, annotation.planar))
    splits = None
    if splits_file is not None:
        try:
            with open(splits_file, encoding="utf-8") as f:
                splits = json.load(f)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise LandmarkError(f"cannot read splits file {splits_file} ({type(e).__name__}: {e})") from None
    test = choose_test_cases([c.case for c in cases], test_cases_file, test_fraction, seed)
    if may_be_absent is not None and list(may_be_absent) == ["all"]:
        may_be_absent = list(dict.fromkeys(n for c in cases for n in list(c.landmarks) + list(c.missing)))
    return write_landmark_dataset(cases, raw_root, dataset_id, name, test_cases=test, splits=splits, folds=folds,
                                  seed=seed, overwrite=overwrite, may_be_absent=may_be_absent,
                                  multi_instance=multi_instance, pixel_spacing=pixel_spacing)
