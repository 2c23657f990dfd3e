"""The per-case prediction JSON (the schema other tools read) and nnU-Net style input folders."""
import json
import os
from contextlib import contextmanager
from typing import Dict, List, Optional

from batchgenerators.utilities.file_and_folder_operations import subfiles
from nnunetv2.utilities.utils import create_paths_fn, get_identifiers_from_splitted_dataset_folder

from nnlandmark.errors import LandmarkError


def case_prediction(case: str, image: str, landmarks: Dict[str, dict]) -> dict:
    """``{"case", "image", "coordinate_system": "LPS", "landmarks": {NAME: {label, voxel, world, likelihood,
    present}}}``; voxel is the continuous ITK index of the original image, world = origin + D @ (spacing * voxel) in
    mm; present is false when the likelihood lies below the model's calibrated threshold (coordinates still given)."""
    return {"case": case, "image": image, "coordinate_system": "LPS", "landmarks": landmarks}


@contextmanager
def written_atomically(path: str, temporary: Optional[str] = None):
    """Yield a temporary path to write instead of ``path``; when the block ends it replaces ``path`` if anything was
    written there, so an interrupted run never leaves a truncated file (nor, short of SIGKILL, the temporary one)."""
    temporary = temporary or f"{path}.tmp{os.getpid()}"
    try:
        yield temporary
        if os.path.exists(temporary):
            os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def write_text_atomic(text: str, path: str) -> None:
    with written_atomically(path) as temporary, open(temporary, "w", newline="") as f:
        f.write(text)


def write_json_atomic(obj, path: str) -> None:
    write_text_atomic(json.dumps(obj, indent=2), path)


def find_input_cases(folder: str, file_ending: str, n_channels: int) -> Dict[str, List[str]]:
    """CASE_0000<ending>, CASE_0001<ending>, ... -> {CASE: [files]}; clear errors for empty or incomplete input."""
    files = subfiles(folder, suffix=file_ending, join=False, sort=True)
    if not files:
        raise LandmarkError(f"no '*_0000{file_ending}' images in {folder}")
    cases = {}
    for case in get_identifiers_from_splitted_dataset_folder(folder, file_ending):
        paths = create_paths_fn(folder, files, file_ending, str(case))
        if len(paths) != n_channels:
            raise LandmarkError(f"case '{case}' in {folder} has {len(paths)} channel file(s), the model expects "
                                f"{n_channels} (named {case}_0000{file_ending} ...)")
        cases[str(case)] = paths
    return cases


def write_prediction_labelmaps(prediction_jsons: List[str], input_dir: str, file_ending: str) -> List[str]:
    """Each CASE.json -> CASE<file_ending> next to it: the predicted cubes on the grid of CASE_0000<file_ending>."""
    import SimpleITK as sitk
    from nnlandmark.dataset_conversion.labelmap import prediction_labelmap
    written = []
    for path in prediction_jsons:
        with open(path, encoding="utf-8") as f:
            prediction = json.load(f)
        case = os.path.basename(path)[:-len(".json")]
        target = os.path.join(os.path.dirname(path), case + file_ending)
        temporary = os.path.join(os.path.dirname(path), f".{case}.tmp{os.getpid()}{file_ending}")
        with written_atomically(target, temporary):
            sitk.WriteImage(prediction_labelmap(os.path.join(input_dir, f"{case}_0000{file_ending}"), prediction),
                            temporary, useCompression=True)
        written.append(target)
    return written
