"""Checks that a raw nnU-Net dataset really encodes landmarks: one blob per label (any number for a multi-instance
class), known label values."""
import os
from os.path import join, isfile
from typing import Dict, List, Set

import numpy as np
import SimpleITK as sitk
from batchgenerators.utilities.file_and_folder_operations import load_json, subfiles
from tqdm import tqdm

from nnlandmark.errors import LandmarkError
from nnlandmark.io.images import preprocessed_case_properties, read_image, read_image_header
from nnlandmark.labelmaps import count_blobs
from nnlandmark.landmark_set import multi_instance, names_by_label


def _check_on_grid(label_path: str, image_path: str) -> None:
    """The label map must share the image's grid exactly: landmark world coordinates come from it. nnU-Net only warns
    about origin/direction differences, which would put every landmark in the wrong place."""
    if not isfile(image_path):
        raise LandmarkError(f"{label_path} has no image {image_path}")
    image, label = read_image_header(image_path), read_image_header(label_path)
    for what, a, b, tol in (("size", image.GetSize(), label.GetSize(), 0), ("spacing", image.GetSpacing(),
                            label.GetSpacing(), 1e-5), ("origin", image.GetOrigin(), label.GetOrigin(), 1e-4),
                            ("direction", image.GetDirection(), label.GetDirection(), 1e-5)):
        if not np.allclose(a, b, atol=tol, rtol=0):
            raise LandmarkError(f"{label_path} and {image_path} differ in {what} ({np.round(b, 4).tolist()} vs "
                                f"{np.round(a, 4).tolist()}); the label map must be on the image's grid")


def _check_image_values(image_path: str) -> None:
    """A full read: truncated or corrupt files (read_image) and NaN/Inf voxels, which nnU-Net would normalise into
    NaN patches."""
    image = read_image(image_path)
    if not np.all(np.isfinite(sitk.GetArrayViewFromImage(image))):
        raise LandmarkError(f"image {image_path} contains NaN or infinite values")


def verify_landmark_dataset(raw_dataset_folder: str, check_image_values: bool = False) -> Dict[str, Set[int]]:
    """Raise a LandmarkError naming the file and landmark at the first violation; return each case's labels.
    Label maps must sit on their image's grid; ``check_image_values`` also reads every image of imagesTr in full
    (every channel: truncated data, NaN/Inf)."""
    dataset_json_file = join(raw_dataset_folder, 'dataset.json')
    if not isfile(dataset_json_file):
        raise LandmarkError(f"{dataset_json_file} not found")
    dataset_json = load_json(dataset_json_file)
    names = names_by_label(dataset_json, dataset_json_file)
    classes = {value for value, name in names.items() if name in multi_instance(dataset_json)}
    label_files = subfiles(join(raw_dataset_folder, 'labelsTr'), suffix=dataset_json['file_ending'])
    if not label_files:
        raise LandmarkError(f"no label files in {join(raw_dataset_folder, 'labelsTr')}")
    present = {}
    for path in tqdm(label_files, desc='checking landmark label maps', leave=False):
        seg = sitk.GetArrayFromImage(read_image(path))
        for value in np.unique(seg):
            if value == 0:
                continue
            if value not in names:
                raise LandmarkError(f"{path}: label value {value} is not in dataset.json labels")
            blobs = count_blobs(seg, int(value))
            if blobs != 1 and value not in classes:   # a multi-instance class: a blob per instance
                raise LandmarkError(f"{path}: landmark '{names[value]}' (label {value}) has {blobs} separate blobs; "
                                    f"each landmark must be a single 3x3x3 cube (several points of one class: "
                                    f"declare it in dataset.json \"multi_instance\")")
        case = os.path.basename(path)[:-len(dataset_json['file_ending'])]
        _check_on_grid(path, join(raw_dataset_folder, 'imagesTr', f"{case}_0000{dataset_json['file_ending']}"))
        present[case] = {int(v) for v in np.unique(seg) if v}
    if check_image_values:
        images = subfiles(join(raw_dataset_folder, 'imagesTr'), suffix=dataset_json['file_ending'])
        for path in tqdm(images, desc='reading every image in full', leave=False):
            _check_image_values(path)
    return present


def labels_in_preprocessed(preprocessed_folder: str) -> Dict[str, Set[int]]:
    """{case: labels with voxels} of a preprocessed configuration, from nnU-Net's ``class_locations``."""
    return {case: {int(v) for v, where in properties['class_locations'].items() if len(where)}
            for case, properties in preprocessed_case_properties(preprocessed_folder).items()}


def landmarks_lost_in_preprocessing(preprocessed_folder: str, present: Dict[str, Set[int]],
                                    names: Dict[int, str]) -> List[str]:
    """Cases where resampling to the target spacing erased a landmark's cube (nnU-Net's class_locations
    are empty for it): that landmark would silently be trained as absent."""
    kept = labels_in_preprocessed(preprocessed_folder)
    lost = []
    for case, labels in present.items():
        lost += [f"{case}/{names[v]}" for v in sorted(labels - kept[case])]
    return lost
