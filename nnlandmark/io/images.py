"""Images and nnU-Net's folders of them: headers read without pixels, SimpleITK images as nnU-Net arrays, input
folders of CASE_0000 files, and the case properties nnU-Net's preprocessing keeps next to each case."""
from glob import glob
from os.path import basename, join
from typing import Dict, List, Sequence, Tuple

import numpy as np
import SimpleITK as sitk
from batchgenerators.utilities.file_and_folder_operations import load_pickle, subfiles
from nnunetv2.utilities.utils import create_paths_fn, get_identifiers_from_splitted_dataset_folder

from nnlandmark.errors import LandmarkError
from nnlandmark.geometry import numpy_order, sitk_stuff


def read_image_header(path: str) -> sitk.ImageFileReader:
    """The header of a 3D scalar image (no pixels read), or a LandmarkError naming the file."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as e:
        raise LandmarkError(f"cannot read image {path}: {' '.join(str(e).split())[:200]}") from None
    if reader.GetDimension() != 3 or reader.GetNumberOfComponents() != 1:
        raise LandmarkError(f"{path} is a {reader.GetDimension()}D image with {reader.GetNumberOfComponents()} "
                            f"component(s); nnlandmark needs 3D scalar volumes (one file per channel)")
    return reader


def read_image(path) -> sitk.Image:
    """A whole image, or a LandmarkError naming the file."""
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as e:
        raise LandmarkError(f"cannot read image {path}: {' '.join(str(e).split())[:300]}") from None


def images_to_nnunet_array(images: Sequence[sitk.Image]) -> Tuple[np.ndarray, dict]:
    """SimpleITK image(s) -> (C, z, y, x) float32 array and properties, exactly as nnU-Net's SimpleITKIO."""
    reference = images[0]
    data = np.stack([sitk.GetArrayFromImage(i) for i in images]).astype(np.float32)
    return data, {'sitk_stuff': sitk_stuff(reference), 'spacing': numpy_order(reference.GetSpacing()).tolist()}


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


def preprocessed_case_properties(preprocessed_folder: str) -> Dict[str, dict]:
    """{case: properties} that nnU-Net's preprocessing wrote as CASE.pkl (geometry, crop, ``class_locations``)."""
    return {basename(p)[:-len('.pkl')]: load_pickle(p) for p in sorted(glob(join(preprocessed_folder, '*.pkl')))}
