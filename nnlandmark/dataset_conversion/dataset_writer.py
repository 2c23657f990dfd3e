"""Images + landmark positions -> an nnU-Net raw dataset with one 3x3x3 label cube per landmark.

Everything is checked before the first file is written. The dataset is then built in a private folder
``nnUNet_raw/.DatasetXXX_Name.<random>`` (a dot name, which nnU-Net never takes for a dataset) under a lock on the
dataset ID, and replaces ``DatasetXXX_Name`` only when complete: a failed, interrupted (Ctrl-C, SIGTERM, SIGHUP) or
concurrent conversion never leaves half a dataset, mixes two, or loses the dataset it was to replace.
"""
import os
import re
import shutil
import signal
import tempfile
import threading
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import combinations
from os.path import basename, exists, isdir, join, realpath
from typing import Dict, List, Optional, Sequence, Tuple

try:
    import fcntl
except ImportError:  # Windows has no flock: conversions there are not locked against each other
    fcntl = None

import numpy as np
import SimpleITK as sitk
from tqdm import tqdm

from nnlandmark import landmark_set
from nnlandmark.errors import LandmarkError
from nnlandmark.geometry import Geometry, empty_grid_like, lps_to_ras
from nnlandmark.io.atomic import write_json_atomic
from nnlandmark.io.images import RASTER_ENDINGS, read_image, read_image_header
from nnlandmark.io.predictions import COORDINATE_SYSTEM_KEY, write_landmark_table
from nnlandmark.labelmaps import CUBE_HALF_WIDTH, landmarks_to_labelmap, overlapping_cubes
from nnlandmark.landmark_set import (INSTANCES_WORLD_JSON, LANDMARKS_VOXEL_JSON, LANDMARKS_WORLD_JSON, MAX_INSTANCES,
                                     MAY_BE_ABSENT_KEY, MULTI_INSTANCE_KEY, SPACING_JSON)
from nnlandmark.paths import writable_folder

FILE_ENDING = ".nii.gz"
_CASE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
MAX_NAME_LENGTH = 200       # case IDs and dataset names, so that every file name stays below the usual 255 bytes
_RESERVED_ENDINGS = (".partial", ".old")      # the temporary folders of earlier nnlandmark versions
_RESERVED_LANDMARKS = ("background", "ignore")  # nnU-Net's label 0 and its ignore label
# signals whose default action ends the process without unwinding it (Windows has no SIGHUP)
_TERMINATING = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


class ConversionWarning(UserWarning):
    """Something the user can reasonably proceed with, said once per conversion."""


@dataclass
class CaseSource:
    case: str                              # case identifier -> CASE_0000.nii.gz, CASE.nii.gz
    images: Sequence[str]                  # one file per channel, anything SimpleITK reads
    landmarks: Dict[str, Sequence[float]]  # name -> (x, y, z) in coordinate_system
    coordinate_system: str                 # "LPS"/"RAS" world mm, or "voxel" (continuous ITK index of images[0])
    source: str                            # the landmark file, named in messages
    missing: Sequence[str] = ()            # names the file lists without a position
    instances: Dict[str, Sequence[Sequence[float]]] = field(default_factory=dict)  # multi-instance class -> points
    planar: bool = False                   # the file gives two coordinates per point (a 2D image's, z = 0)


@dataclass
class _Checked:
    source: CaseSource
    reference: sitk.Image           # channel 0 header (no pixels) for the label map geometry
    index: Dict[str, np.ndarray]    # name -> continuous ITK index
    world: Dict[str, np.ndarray]    # name -> LPS mm
    instance_index: Dict[str, List[np.ndarray]] = field(default_factory=dict)   # class -> continuous ITK indices
    instance_world: Dict[str, List[np.ndarray]] = field(default_factory=dict)   # class -> LPS mm

    def cubes(self, labels: Dict[str, int]) -> Tuple[Dict[str, np.ndarray], Dict[str, int]]:
        """(index, label) of every cube to paint, by name: the landmarks, and each instance as 'CLASS #k' with its
        class's label."""
        index, cube_labels = dict(self.index), {n: labels.get(n, 0) for n in self.index}
        for name, points in self.instance_index.items():
            for k, point in enumerate(points, start=1):
                index[f"{name} #{k}"], cube_labels[f"{name} #{k}"] = point, labels.get(name, 0)
        return index, cube_labels


def _inside(index: np.ndarray, size) -> np.ndarray:
    return np.all((index >= -0.5) & (index < np.asarray(size) - 0.5), axis=-1)


def _to_index(case: CaseSource, geometry: Geometry, size) -> Dict[str, np.ndarray]:
    """Landmarks and instances ('CLASS #k') -> continuous ITK index, refusing points outside the image with a hint
    when a mix-up of LPS and RAS explains it."""
    system = case.coordinate_system
    if system not in ("LPS", "RAS", "voxel"):
        raise LandmarkError(f"{case.source}: unknown coordinate system '{system}' (LPS, RAS or voxel)")
    named = {**case.landmarks, **{f"{name} #{k}": p for name, points in case.instances.items()
                                  for k, p in enumerate(points, start=1)}}
    names = list(named)
    if not names:
        return {}
    points = np.array([np.asarray(named[n], float).reshape(3) for n in names])
    if not np.all(np.isfinite(points)):
        raise LandmarkError(f"{case.source}: landmark coordinates must be finite numbers")
    world = lps_to_ras(points) if system == "RAS" else points
    index = points if system == "voxel" else geometry.world_to_index(world)
    inside = _inside(index, size)
    if not inside.any() and len(names) > 1:
        hint = ""
        if system != "voxel" and _inside(geometry.world_to_index(lps_to_ras(world)), size).all():
            other = "RAS" if system == "LPS" else "LPS"
            hint = f"; read as {other} they would all lie inside: is the file's coordinate system {other}?"
        raise LandmarkError(f"{case.source}: none of its {len(names)} landmarks lies inside image {case.images[0]} "
                            f"(image and annotation do not overlap){hint}")
    if not inside.all():
        bad = names[int(np.argmin(inside))]
        raise LandmarkError(f"{case.source}: landmark '{bad}' at voxel {np.round(index[names.index(bad)], 2).tolist()} "
                            f"lies outside image {case.images[0]} of size {list(size)}")
    return dict(zip(names, index))


def _check_name(value: str, what: str, where: str = "") -> None:
    """Case IDs and dataset names become file names: refuse what nnU-Net or the file system cannot take."""
    if len(value) > MAX_NAME_LENGTH:
        raise LandmarkError(f"{what} '{value[:30]}...'{where} has {len(value)} characters; at most {MAX_NAME_LENGTH} "
                            f"fit in file names: shorten it")
    if not _CASE_ID.match(value):
        raise LandmarkError(f"{what} '{value}'{where} may only hold letters, digits, '.', '_' and '-'")


def _check_case(case: CaseSource, n_channels: int, pixel_spacing: Optional[Sequence[float]] = None) -> _Checked:
    _check_name(case.case, "case ID", f" ({case.source})")
    if case.case == COORDINATE_SYSTEM_KEY:
        raise LandmarkError(f"case ID '{case.case}' ({case.source}) is reserved: the landmark tables use it to say "
                            f"what they hold; rename the case")
    if len(case.images) != n_channels:
        raise LandmarkError(f"case '{case.case}' has {len(case.images)} image channel(s), the first case has "
                            f"{n_channels}: {', '.join(case.images)}")
    readers = [read_image_header(p, planar=True) for p in case.images]
    for path, reader in zip(case.images[1:], readers[1:]):
        if (reader.GetSize() != readers[0].GetSize()
                or not np.allclose(reader.GetSpacing(), readers[0].GetSpacing(), atol=1e-5)
                or not np.allclose(reader.GetOrigin(), readers[0].GetOrigin(), atol=1e-4)
                or not np.allclose(reader.GetDirection(), readers[0].GetDirection(), atol=1e-5)):
            raise LandmarkError(f"channel {path} has another size or geometry than {case.images[0]}")
    too_many = [n for n, points in case.instances.items() if len(points) > MAX_INSTANCES]
    if too_many:
        raise LandmarkError(f"{case.source}: {len(case.instances[too_many[0]])} instances of '{too_many[0]}'; at most "
                            f"{MAX_INSTANCES} per case are supported")
    reference = empty_grid_like(readers[0])
    if pixel_spacing is not None:
        if reference.GetSize()[2] > 1:
            raise LandmarkError(f"--spacing sets the pixel spacing of 2D images, but {case.images[0]} is a 3D volume "
                                f"of {reference.GetSize()[2]} slices")
        reference.SetSpacing([*map(float, pixel_spacing), reference.GetSpacing()[2]])
    if case.planar and reference.GetSize()[2] > 1:
        raise LandmarkError(f"{case.source} gives two coordinates per point, but {case.images[0]} is a 3D volume: "
                            f"give x,y,z (or i,j,k)")
    geometry = Geometry.of_image(reference)
    index = _to_index(case, geometry, reference.GetSize())
    instance_index = {name: [index.pop(f"{name} #{k}") for k in range(1, len(points) + 1)]
                      for name, points in case.instances.items()}
    return _Checked(case, reference, index, {n: geometry.index_to_world(i) for n, i in index.items()},
                    instance_index, {n: [geometry.index_to_world(i) for i in points]
                                     for n, points in instance_index.items()})


def _check_planar(checked: Sequence[_Checked], pixel_spacing: Optional[Sequence[float]]) -> None:
    """All 2D images (one slice) or all volumes: nnU-Net plans either 2d or 3d configurations for a dataset. 2D
    images of a format without spacing are read at 1 mm per pixel unless --spacing says otherwise: said once."""
    flat = [c.reference.GetSize()[2] == 1 for c in checked]
    if any(flat) and not all(flat):
        one, other = checked[flat.index(True)], checked[flat.index(False)]
        raise LandmarkError(f"the dataset mixes 2D images ({one.source.images[0]}) and 3D volumes "
                            f"({other.source.images[0]}): convert them as two datasets")
    raster = next((p for c in checked for p in c.source.images if p.lower().endswith(RASTER_ENDINGS)), None)
    if raster and pixel_spacing is None:
        warnings.warn(f"{raster} and other images of formats without a pixel spacing are read at 1 mm per pixel; "
                      f"give --spacing SX SY if that is not their size", ConversionWarning)


def _landmark_order(cases: Sequence[CaseSource], landmark_names: Optional[Sequence[str]],
                    multi_instance: Sequence[str] = ()) -> List[str]:
    seen = list(dict.fromkeys([n for c in cases for n in list(c.landmarks) + list(c.missing) + list(c.instances)]
                              + list(multi_instance)))
    if landmark_names is None:
        names = seen
    else:
        names = [str(n) for n in landmark_names]
        if len(set(names)) != len(names):
            raise LandmarkError(f"landmark names {names} contain duplicates")
        for case in cases:
            unknown = [n for n in list(case.landmarks) + list(case.missing) + list(case.instances) if n not in names]
            if unknown:
                raise LandmarkError(f"{case.source}: landmark '{unknown[0]}' is not one of {names}")
    if not names:
        raise LandmarkError("no landmarks in any annotation file")
    reserved = [n for n in names if n.lower() in _RESERVED_LANDMARKS]
    if reserved:
        raise LandmarkError(f"a landmark may not be called '{reserved[0]}' (nnU-Net reserves 'background' for label 0 "
                            f"and 'ignore' for its ignore label): rename it")
    return names


def _check_cases(cases: Sequence[CaseSource]) -> None:
    if not cases:
        raise LandmarkError("no cases to convert")
    first, owner = {}, {}
    for case in cases:
        if case.case in first:
            raise LandmarkError(f"duplicate case ID '{case.case}': {first[case.case]} and {case.source}")
        first[case.case] = case.source
        for image in case.images:
            other = owner.setdefault(realpath(image), case.case)
            if other != case.case:
                raise LandmarkError(f"image {image} belongs to two cases, '{other}' and '{case.case}': give each "
                                    f"case its own image")


def _check_splits(splits: list, train: Sequence[str]) -> list:
    """An nnU-Net split over the training cases, in which no fold is empty or names a case twice."""
    train = set(train)
    if not isinstance(splits, list) or not splits:
        raise LandmarkError("splits must be a non-empty list of {'train': [...], 'val': [...]} folds")
    for k, fold in enumerate(splits):
        if not isinstance(fold, dict) or not isinstance(fold.get("train"), list) or not isinstance(fold.get("val"), list):
            raise LandmarkError(f"splits fold {k} must be {{'train': [...], 'val': [...]}}")
        if not all(isinstance(c, str) for c in fold["train"] + fold["val"]):
            raise LandmarkError(f"splits fold {k} must list case IDs as strings")
        unknown = [c for c in fold["train"] + fold["val"] if c not in train]
        if unknown:
            raise LandmarkError(f"splits fold {k} names case '{unknown[0]}', which is not a training case")
        for part in ("train", "val"):
            if not fold[part]:
                raise LandmarkError(f"splits fold {k} has an empty '{part}' list: every fold needs cases in both")
            twice = [c for c in dict.fromkeys(fold[part]) if fold[part].count(c) > 1]
            if twice:
                raise LandmarkError(f"splits fold {k} lists case '{twice[0]}' twice in '{part}'")
        both = [c for c in fold["val"] if c in set(fold["train"])]
        if both:
            raise LandmarkError(f"splits fold {k} has case '{both[0]}' in both 'train' and 'val'")
    return splits


def _warn_about(checked: Sequence[_Checked], names: Sequence[str], multi_instance: Sequence[str]) -> None:
    absent = {n: [c.source.case for c in checked if n not in c.index] for n in names if n not in multi_instance}
    absent = {n: cases for n, cases in absent.items() if cases}
    if absent:
        text = "; ".join(f"'{n}' in {len(c)} case(s) ({', '.join(c[:3])}{', ...' if len(c) > 3 else ''})"
                         for n, c in absent.items())
        warnings.warn(f"landmarks missing (recorded as null in {LANDMARKS_VOXEL_JSON}): {text}", ConversionWarning)
    touching = [(c.source.case, name) for c in checked for name, points in c.instance_index.items()
                for a, b in combinations(np.rint(points), 2) if np.max(np.abs(a - b)) <= 2 * CUBE_HALF_WIDTH + 1]
    if touching:
        text = ", ".join(f"{case}: '{name}'" for case, name in touching[:5]) + (", ..." if len(touching) > 5 else "")
        warnings.warn(f"{len(touching)} pair(s) of instances so close that their cubes touch ({text}): training "
                      f"tells instances apart as separate blobs, so it sees each such pair as one", ConversionWarning)
    close = [(c.source.case, a, b) for c in checked for a, b in overlapping_cubes(c.cubes({})[0])]
    if close:
        text = ", ".join(f"{case}: '{a}'/'{b}'" for case, a, b in close[:5]) + (", ..." if len(close) > 5 else "")
        warnings.warn(f"{len(close)} landmark pair(s) closer than the 3x3x3 cube ({text}); their shared voxels go to "
                      f"the nearer landmark and each blob is trimmed to keep its centre of mass near its landmark "
                      f"(typically within 0.1-0.3 voxel)", ConversionWarning)


def _dataset_folder(raw_root: str, dataset_id: int, name: str) -> str:
    if not 1 <= int(dataset_id) <= 999:
        raise LandmarkError(f"dataset ID {dataset_id} must lie in 1..999")
    _check_name(name, "dataset name")
    if name.lower().endswith(_RESERVED_ENDINGS):
        raise LandmarkError(f"dataset name '{name}' is reserved (names ending in .partial or .old were the temporary "
                            f"folders of conversions): choose another name")
    writable_folder(raw_root, "nnUNet_raw")
    return join(raw_root, f"Dataset{int(dataset_id):03d}_{name}")


def _check_target(folder: str, dataset_id: int, overwrite: bool) -> None:
    """The target may be replaced only with ``overwrite``, and its ID must not belong to another dataset."""
    raw_root, prefix = os.path.dirname(folder), f"Dataset{int(dataset_id):03d}_"
    others = [d for d in (os.listdir(raw_root) if isdir(raw_root) else [])
              if d.startswith(prefix) and d != basename(folder) and isdir(join(raw_root, d))
              and not d.endswith(_RESERVED_ENDINGS)]
    if others:
        raise LandmarkError(f"dataset ID {dataset_id} is already used by {join(raw_root, others[0])}; "
                            f"choose another ID")
    if isdir(folder) and not overwrite:
        raise LandmarkError(f"{folder} already exists; pass --overwrite to replace it")


@contextmanager
def _conversion_lock(raw_root: str, dataset_id: int):
    """One conversion per dataset ID at a time: a second one fails at once instead of mixing two datasets. The lock
    file is removed on release; whoever locked a file that was removed meanwhile locks the new one instead."""
    path = join(raw_root, f".Dataset{int(dataset_id):03d}.lock")
    os.makedirs(raw_root, exist_ok=True)
    if fcntl is None:
        yield
        return
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LandmarkError(f"another conversion into dataset {int(dataset_id):03d} is running (lock {path}); "
                                f"wait for it to finish") from None
        try:
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        yield
    finally:
        os.remove(path)
        os.close(fd)


@contextmanager
def _terminating_signals_unwind():
    """SIGTERM and SIGHUP end a process at once by default, which would leave the build folder behind: while this
    block runs they raise SystemExit(128 + signal) instead, so that it is removed. Handlers set by others are kept."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    replaced = [s for s in _TERMINATING if signal.getsignal(s) == signal.SIG_DFL]

    def unwind(signum, frame):
        raise SystemExit(128 + signum)

    for s in replaced:
        signal.signal(s, unwind)
    try:
        yield
    finally:
        for s in replaced:
            signal.signal(s, signal.SIG_DFL)


def _remove_leftovers(raw_root: str, dataset_id: int) -> None:
    """Under the lock, a build folder of this ID is one a killed conversion (SIGKILL, power loss) left: remove it,
    first putting back a dataset it had moved aside. Legacy ``.partial``/``.old`` folders are named, not deleted."""
    for entry in sorted(os.listdir(raw_root)):
        path = join(raw_root, entry)
        if entry.startswith(f".Dataset{int(dataset_id):03d}_") and isdir(path):
            target = join(raw_root, entry[1:].rsplit(".", 1)[0])
            if isdir(join(path, "previous")) and not exists(target):
                os.rename(join(path, "previous"), target)
            shutil.rmtree(path)
            warnings.warn(f"removed {path}, left behind by a conversion that was killed", ConversionWarning)
        elif (entry.startswith(f"Dataset{int(dataset_id):03d}_") and entry.endswith(_RESERVED_ENDINGS)
              and isdir(path)):
            warnings.warn(f"{path} is left over from an interrupted conversion: delete it (nnU-Net takes it for a "
                          f"second dataset {int(dataset_id):03d})", ConversionWarning)


def _swap_in(built: str, folder: str, previous: str) -> None:
    """``built`` becomes ``folder``; an existing ``folder`` moves to ``previous``. Interrupting signals wait until
    both renames are done, so that no Ctrl-C or SIGTERM falls between them and leaves neither dataset in place."""
    can_block = hasattr(signal, "pthread_sigmask")  # not on Windows
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, *_TERMINATING}) if can_block else None
    try:
        if isdir(folder):
            os.rename(folder, previous)
        os.rename(built, folder)
    finally:
        if can_block:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def _save_image(image: sitk.Image, path: str) -> None:
    try:
        sitk.WriteImage(image, path, useCompression=True)
    except RuntimeError as e:  # ITK reports a full disk or a vanished folder this way
        raise LandmarkError(f"cannot write {path}: {' '.join(str(e).split())[:200]}") from None


def _write_image(source: str, target: str, reference: sitk.Image) -> None:
    """The image as NIfTI on the ``reference`` grid (its own; a 2D image's as a volume of one slice, with the
    pixel spacing of --spacing where given)."""
    image = read_image(source, planar=True)
    values = sitk.GetArrayViewFromImage(image)
    if np.issubdtype(values.dtype, np.floating) and not np.all(np.isfinite(values)):
        raise LandmarkError(f"image {source} contains NaN or infinite values")
    if source.lower().endswith(FILE_ENDING) and image.GetSize()[2] > 1:   # a volume: copied as it is
        shutil.copyfile(source, target)
    else:
        image.CopyInformation(reference)
        _save_image(image, target)


def _write_files(folder: str, checked: Sequence[_Checked], labels: Dict[str, int], test_cases: Sequence[str],
                 dataset_json: dict, splits: Optional[list], multi_instance: Sequence[str]) -> None:
    names = [n for n in labels if n not in multi_instance]
    for sub in ("imagesTr", "labelsTr") + (("imagesTs", "labelsTs") if test_cases else ()):
        os.makedirs(join(folder, sub))
    with tqdm(checked, desc="writing images and label cubes", unit="case") as bar:  # closed before any error
        for item in bar:
            split = "Ts" if item.source.case in test_cases else "Tr"
            for channel, path in enumerate(item.source.images):
                _write_image(path, join(folder, f"images{split}", f"{item.source.case}_{channel:04d}{FILE_ENDING}"),
                             item.reference)
            _save_image(landmarks_to_labelmap(item.reference, *item.cubes(labels)),
                        join(folder, f"labels{split}", item.source.case + FILE_ENDING))
    write_json_atomic(dataset_json, join(folder, "dataset.json"))
    write_landmark_table(join(folder, LANDMARKS_VOXEL_JSON), {c.source.case: {
        n: c.index[n].tolist() if n in c.index else None for n in names} for c in checked}, "voxel")
    write_landmark_table(join(folder, LANDMARKS_WORLD_JSON), {c.source.case: {
        n: c.world[n].tolist() if n in c.world else None for n in names} for c in checked}, "LPS")
    if multi_instance:
        write_landmark_table(join(folder, INSTANCES_WORLD_JSON), {c.source.case: {
            n: [p.tolist() for p in c.instance_world.get(n, [])] for n in multi_instance} for c in checked}, "LPS")
    write_json_atomic({c.source.case: list(c.reference.GetSpacing()) for c in checked}, join(folder, SPACING_JSON))
    if splits is not None:
        write_json_atomic(splits, join(folder, "splits_final.json"))


def write_landmark_dataset(cases: Sequence[CaseSource], raw_root: str, dataset_id: int, name: str, *,
                           landmark_names: Optional[Sequence[str]] = None, test_cases: Sequence[str] = (),
                           channel_names: Optional[Dict[str, str]] = None, splits: Optional[list] = None,
                           folds: Optional[int] = None, seed: int = 12345, overwrite: bool = False,
                           dataset_json_extra: Optional[dict] = None,
                           may_be_absent: Optional[Sequence[str]] = None, multi_instance: Sequence[str] = (),
                           pixel_spacing: Optional[Sequence[float]] = None) -> str:
    """Check every case, then write ``raw_root/DatasetXXX_name``: imagesTr/labelsTr (+ imagesTs/labelsTs for
    ``test_cases``), dataset.json with the landmarks as labels 1..N in ``landmark_names`` order, the landmark
    positions as continuous ITK index and LPS mm (null where absent), spacing.json and, given ``splits`` or
    ``folds``, splits_final.json (copied into nnUNet_preprocessed by nnLandmark_plan_and_preprocess).
    ``may_be_absent`` names the landmarks whose absence in a case is real, ``multi_instance`` the classes with any
    number of points per case (see nnlandmark.landmark_set; their points go to all_instances_world.json).
    2D images become volumes of one slice (``geometry.as_volume``), with ``pixel_spacing`` (x, y mm) where given:
    nnU-Net then plans its ``2d`` configuration for them."""
    folder = _dataset_folder(raw_root, dataset_id, name)
    _check_target(folder, dataset_id, overwrite)
    _check_cases(cases)
    multi_instance = list(dict.fromkeys(multi_instance or ()))
    names = _landmark_order(cases, landmark_names, multi_instance)
    labels = {n: i + 1 for i, n in enumerate(names)}
    repeated = next(((c.source, n) for c in cases for n in c.instances if n not in multi_instance), None)
    if repeated:
        raise LandmarkError(f"{repeated[0]}: '{repeated[1]}' has instances but is not declared multi-instance")
    unknown = [n for n in (may_be_absent or ()) if n not in labels]
    if unknown:
        raise LandmarkError(f"--may-be-absent names '{unknown[0]}', which is not one of the landmarks {names}")
    ids = [c.case for c in cases]
    test_cases = list(dict.fromkeys(test_cases))
    unknown = [c for c in test_cases if c not in ids]
    if unknown:
        raise LandmarkError(f"test case '{unknown[0]}' is not among the {len(ids)} cases")
    train = [c for c in ids if c not in set(test_cases)]
    if not train:
        raise LandmarkError("every case is a test case; nothing is left to train on")
    if splits is not None:
        splits = _check_splits(splits, train)
    elif folds is not None:
        if not 2 <= folds <= len(train):
            raise LandmarkError(f"--folds {folds} needs between 2 and {len(train)} (the training cases)")
        if seed < 0:
            raise LandmarkError(f"--seed {seed} must be 0 or more")
        from nnunetv2.utilities.crossval_split import generate_crossval_split
        splits = generate_crossval_split(train, seed=seed, n_splits=folds)

    n_channels = len(cases[0].images)
    with tqdm(cases, desc="checking cases", unit="case", leave=False) as bar:  # closed before any error
        checked = [_check_case(c, n_channels, pixel_spacing) for c in bar]
    _check_planar(checked, pixel_spacing)
    _warn_about(checked, names, multi_instance)
    dataset_json = {"channel_names": channel_names or {str(c): "image" for c in range(n_channels)},
                    "labels": {"background": 0, **labels}, "numTraining": len(train),
                    "file_ending": FILE_ENDING, **(dataset_json_extra or {})}
    if may_be_absent:
        dataset_json[MAY_BE_ABSENT_KEY] = [n for n in names if n in set(may_be_absent)]
    if multi_instance:
        dataset_json[MULTI_INSTANCE_KEY] = [n for n in names if n in set(multi_instance)]
        landmark_set.multi_instance(dataset_json)   # refuses a dataset of multi-instance classes only

    try:
        with _terminating_signals_unwind(), _conversion_lock(raw_root, dataset_id):
            _remove_leftovers(raw_root, dataset_id)
            _check_target(folder, dataset_id, overwrite)  # again: another conversion may have finished meanwhile
            build = tempfile.mkdtemp(dir=raw_root, prefix=f".{basename(folder)}.")
            try:
                _write_files(join(build, "dataset"), checked, labels, test_cases, dataset_json, splits, multi_instance)
                _swap_in(join(build, "dataset"), folder, join(build, "previous"))
            finally:
                shutil.rmtree(build, ignore_errors=True)
    except OSError as e:
        path = e.filename2 or e.filename or raw_root  # copyfile names the source first, the target second
        raise LandmarkError(f"cannot write {path}: {e.strerror or e} (disk full or nnUNet_raw not writable?)") from None
    return folder
