"""What a dataset.json says about its landmarks, and the file names of a landmark dataset (docs/design.md).

The labels 1..N are the landmarks (0 is nnU-Net's background); output channel c of a model is label c + 1.
``"landmarks_may_be_absent": [...] | true`` names the landmarks whose missing cube means "not there" (for the others
it means "not annotated"); ``"mirror_pairs": [[left, right], ...]`` the landmarks that swap under a left-right flip;
``"biometry_pairs": [[a, b], ...]`` the distances that evaluation reports; ``"multi_instance": [...]`` the classes
with zero or many points per case (electrode contacts, teeth, nodules): one channel each, whose instances share its
label value (one cube per instance) and are told apart as connected components.
"""
import json
from typing import Dict, List, Sequence, Set, Tuple

from nnlandmark.errors import LandmarkError

MAY_BE_ABSENT_KEY = "landmarks_may_be_absent"
MIRROR_PAIRS_KEY = "mirror_pairs"
BIOMETRY_PAIRS_KEY = "biometry_pairs"
MULTI_INSTANCE_KEY = "multi_instance"
MAX_INSTANCES = 100   # instances of one class per case: each gets a slot of its own in the training targets

LANDMARKS_WORLD_JSON = "all_landmarks_world.json"   # {case: {name: [x, y, z] LPS mm | null}} of a raw dataset
LANDMARKS_VOXEL_JSON = "all_landmarks_voxel.json"   # the same as continuous ITK indices
INSTANCES_WORLD_JSON = "all_instances_world.json"   # {case: {class: [[x, y, z], ...]}}: the multi-instance classes
SPACING_JSON = "spacing.json"                       # {case: [sx, sy, sz]}
THRESHOLDS_JSON = "landmark_thresholds.json"        # presence thresholds, next to a trained model
UNCERTAINTY_JSON = "landmark_uncertainty.json"      # the calibrated error model, next to a trained model
INSTANCES_JSON = "instance_detection.json"          # multi-instance thresholds and NMS distances, likewise

Pair = Tuple[str, str]


def landmark_labels(dataset_json: dict, where: str = "dataset.json") -> Dict[str, int]:
    """{name: label value} of the landmarks, in label order; a LandmarkError when 'labels' is not a mapping of names
    to non-negative integers with at least one landmark."""
    labels = dataset_json.get("labels") if isinstance(dataset_json, dict) else None
    if not isinstance(labels, dict):
        raise LandmarkError(f"{where}: no 'labels' mapping")
    regions = [name for name, value in labels.items() if isinstance(value, (list, tuple))]
    if regions:
        raise LandmarkError(f"{where}: label '{regions[0]}' is a region {labels[regions[0]]} (nnU-Net region-based "
                            f"training); 'labels' must give each landmark one integer")
    try:
        values = {str(name): int(value) for name, value in labels.items()}
    except (TypeError, ValueError):
        raise LandmarkError(f"{where}: 'labels' must map landmark names to integers") from None
    landmarks = {name: value for name, value in values.items() if value != 0}
    if not landmarks or min(landmarks.values()) < 0:
        raise LandmarkError(f"{where}: 'labels' must map landmark names to positive integers")
    return dict(sorted(landmarks.items(), key=lambda item: item[1]))


def read_dataset_json(path: str) -> dict:
    """A dataset.json that planning, training and prediction can rely on, or a LandmarkError naming the file and the
    key: valid JSON, landmark ``labels``, a ``file_ending`` and ``channel_names``."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            dataset_json = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise LandmarkError(f"{path} is not readable JSON ({type(e).__name__}: {e})") from None
    if not isinstance(dataset_json, dict):
        raise LandmarkError(f"{path} must hold a JSON object with 'labels', 'channel_names' and 'file_ending'")
    landmark_labels(dataset_json, path)
    ending = dataset_json.get("file_ending")
    if not (isinstance(ending, str) and ending.startswith(".")):
        raise LandmarkError(f"{path}: 'file_ending' must name the image files' extension, e.g. \".nii.gz\"")
    channels = dataset_json.get("modality", dataset_json.get("channel_names"))  # nnU-Net's order
    if not (isinstance(channels, dict) and channels):
        raise LandmarkError(f"{path}: 'channel_names' must name each image channel, e.g. {{\"0\": \"CT\"}}")
    return dataset_json


def names_by_label(dataset_json: dict, where: str = "dataset.json") -> Dict[int, str]:
    """{label value: landmark name}, the inverse of ``landmark_labels``."""
    return {value: name for name, value in landmark_labels(dataset_json, where).items()}


def landmark_names(dataset_json: dict) -> List[str]:
    """Landmark names in label order (output channel order)."""
    return list(landmark_labels(dataset_json))


def may_be_absent(dataset_json: dict) -> Set[str]:
    """The landmarks whose absence in a case is real (validated against the labels)."""
    value = dataset_json.get(MAY_BE_ABSENT_KEY, [])
    names = landmark_names(dataset_json)
    if value is True:
        return set(names)
    if value is False:
        return set()
    if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
        raise LandmarkError(f"dataset.json '{MAY_BE_ABSENT_KEY}' must be a list of landmark names or true")
    unknown = [n for n in value if n not in names]
    if unknown:
        raise LandmarkError(f"dataset.json '{MAY_BE_ABSENT_KEY}' names '{unknown[0]}', which is not a landmark label")
    return set(value)


def multi_instance(dataset_json: dict) -> List[str]:
    """The multi-instance classes (validated against the labels and the mirror pairs), in label order."""
    value = dataset_json.get(MULTI_INSTANCE_KEY, [])
    names = landmark_names(dataset_json)
    if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
        raise LandmarkError(f"dataset.json '{MULTI_INSTANCE_KEY}' must be a list of landmark names")
    unknown = [n for n in value if n not in names]
    if unknown:
        raise LandmarkError(f"dataset.json '{MULTI_INSTANCE_KEY}' names '{unknown[0]}', which is not a landmark label")
    paired = [n for pair in dataset_json.get(MIRROR_PAIRS_KEY, []) for n in pair if n in value]
    if paired:
        raise LandmarkError(f"dataset.json: '{paired[0]}' is a multi-instance class and in a mirror pair; mirror pairs "
                            f"are single landmarks")
    return [n for n in names if n in set(value)]


def single_landmarks(dataset_json: dict) -> Dict[str, int]:
    """{name: label value} of the landmarks with one point per case (all but the multi-instance classes)."""
    classes = set(multi_instance(dataset_json))
    return {name: value for name, value in landmark_labels(dataset_json).items() if name not in classes}


def mirror_pairs(dataset_json: dict) -> List[Pair]:
    """Validated ``[[left, right], ...]`` from dataset.json; [] when the dataset declares none."""
    pairs = dataset_json.get(MIRROR_PAIRS_KEY, [])
    names = set(landmark_names(dataset_json))
    seen = set()
    for pair in pairs if isinstance(pairs, list) else [pairs]:
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and pair[0] != pair[1]
                and all(isinstance(n, str) and n in names for n in pair)):
            raise LandmarkError(f"dataset.json '{MIRROR_PAIRS_KEY}': {pair!r} is not a pair of two different landmark "
                                f"names")
        if seen & set(pair):
            raise LandmarkError(f"dataset.json '{MIRROR_PAIRS_KEY}': landmark '{(seen & set(pair)).pop()}' is in two "
                                f"pairs")
        seen |= set(pair)
    return [tuple(p) for p in pairs]


def label_swap(dataset_json: dict) -> Dict[int, int]:
    """Label value -> the value of its mirror partner (both directions)."""
    labels = landmark_labels(dataset_json)
    swap = {}
    for a, b in mirror_pairs(dataset_json):
        swap[labels[a]], swap[labels[b]] = labels[b], labels[a]
    return swap


def channel_permutation(dataset_json: dict) -> List[int]:
    """Output channel c (label c + 1) -> the channel of its mirror partner (itself when unpaired)."""
    swap = label_swap(dataset_json)
    return [swap.get(c + 1, c + 1) - 1 for c in range(len(landmark_labels(dataset_json)))]


def checked_pairs(pairs: Sequence, where: str) -> List[Pair]:
    """Biometry pairs as (a, b) tuples of two different names, or a LandmarkError saying where the bad one is."""
    out = []
    for p in pairs:
        if (not isinstance(p, (list, tuple)) or len(p) != 2 or not all(isinstance(n, str) and n for n in p)
                or p[0] == p[1]):
            raise LandmarkError(f"{where}: a biometry pair must be two different landmark names, got {p!r}")
        out.append((p[0], p[1]))
    return out


def biometry_pairs(dataset_json: dict, where: str = "dataset.json") -> List[Pair]:
    """``biometry_pairs`` of a dataset.json ([] when it declares none)."""
    pairs = dataset_json.get(BIOMETRY_PAIRS_KEY, []) if isinstance(dataset_json, dict) else []
    if not isinstance(pairs, list):
        raise LandmarkError(f"{where}: '{BIOMETRY_PAIRS_KEY}' must be a list of [name, name] pairs")
    return checked_pairs(pairs, f"{where}: {BIOMETRY_PAIRS_KEY}")
