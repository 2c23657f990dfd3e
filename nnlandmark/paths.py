"""nnU-Net's folders (a one-line error names the variable to set) and the names of what nnlandmark adds to them."""
import os
import tempfile
from os.path import exists, isdir
from pathlib import Path
from typing import Optional

from nnlandmark.errors import LandmarkError


def require_path(variable: str, writable: bool = False) -> str:
    """``nnUNet_raw`` / ``nnUNet_preprocessed`` / ``nnUNet_results`` or a clear LandmarkError; ``writable`` for the
    folders a command writes into (only an existing one is probed: nnU-Net creates a missing one)."""
    value = os.environ.get(variable)
    if not value:
        raise LandmarkError(f"environment variable {variable} is not set: export {variable}=/path/to/{variable} "
                            f"(nnU-Net's folder convention)")
    if exists(value) and not isdir(value):
        raise LandmarkError(f"{variable}={value} is a file, not a folder: export {variable}=/path/to/a/folder")
    if writable and isdir(value):
        _probe_writable(value, variable)
    return value


def augmentation_workers() -> Optional[int]:
    """nnU-Net's ``nnUNet_n_proc_DA`` (data augmentation processes; 0 = in the training process), None where unset.
    nnU-Net reads it with a bare int() deep inside a run, so a typo or a negative number would be a traceback."""
    value = os.environ.get('nnUNet_n_proc_DA')
    if value is None:
        return None
    if not value.strip().isdigit():
        raise LandmarkError(f"nnUNet_n_proc_DA={value!r} is not a whole number >= 0 (the data augmentation processes; "
                            f"0 runs augmentation in the training process): export nnUNet_n_proc_DA=2")
    return int(value)


def writable_folder(path: str, what: str) -> str:
    """``path`` if it is, or can be created as, a folder this process can write into (checked with a real write in
    the nearest existing folder, nothing created), so that a run stops before its work rather than after it; ``what``
    names it in the error (e.g. 'output folder -o')."""
    existing = next(p for p in (path, *Path(path).parents) if exists(p))
    if not isdir(existing):
        where = "is a file" if str(existing) == str(path) else f"cannot be created: {existing} is a file"
        raise LandmarkError(f"{what} {path} {where}, not a folder: choose a folder")
    _probe_writable(str(existing), what)
    return path


def _probe_writable(folder: str, what: str) -> None:
    """A real write, not os.access: permissions, read-only mounts and ACLs all show."""
    try:
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as e:
        raise LandmarkError(f"{what} {folder} is not writable ({e.strerror}): fix its permissions or choose another "
                            f"folder") from None


def dataset_name(dataset_name_or_id) -> str:
    """'5', 5 or 'Dataset005_X' -> 'Dataset005_X', searched where nnU-Net searches; LandmarkError if absent."""
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name
    try:
        return maybe_convert_to_dataset_name(str(dataset_name_or_id) if not str(dataset_name_or_id).isdigit()
                                             else int(dataset_name_or_id))
    except RuntimeError as e:
        raise LandmarkError(f"dataset {dataset_name_or_id} not found in nnUNet_raw, nnUNet_preprocessed or "
                            f"nnUNet_results") from e


CPU_PLANS = 'nnLandmarkCPUPlans'    # the small CPU plans (nnLandmark_plan_and_preprocess --cpu_plans)
PLANAR = '2d'                 # nnU-Net's configuration for 2D images (volumes of one slice), the only one planned
WHOLE_VOLUME = '3d_whole'           # the coarse whole-volume configuration of the CPU plans (--cpu_whole_volume)
WHOLE_IMAGE = '2d_whole'            # the coarse whole-image configuration of 2D images larger than one CPU patch
COARSE_STAGES = {'3d_fullres': WHOLE_VOLUME, PLANAR: WHOLE_IMAGE}   # a cascade's fine configuration: its coarse one
