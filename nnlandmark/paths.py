"""nnU-Net's folders (a one-line error names the variable to set) and the names of what nnlandmark adds to them."""
import os
from os.path import isdir, join

from nnlandmark.errors import LandmarkError


def require_path(variable: str) -> str:
    """``nnUNet_raw`` / ``nnUNet_preprocessed`` / ``nnUNet_results`` or a clear LandmarkError."""
    value = os.environ.get(variable)
    if not value:
        raise LandmarkError(f"environment variable {variable} is not set: export {variable}=/path/to/{variable} "
                            f"(nnU-Net's folder convention)")
    return value


def dataset_name(dataset_name_or_id) -> str:
    """'5', 5 or 'Dataset005_X' -> 'Dataset005_X', searched where nnU-Net searches; LandmarkError if absent."""
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name
    try:
        return maybe_convert_to_dataset_name(str(dataset_name_or_id) if not str(dataset_name_or_id).isdigit()
                                             else int(dataset_name_or_id))
    except RuntimeError as e:
        raise LandmarkError(f"dataset {dataset_name_or_id} not found in nnUNet_raw, nnUNet_preprocessed or "
                            f"nnUNet_results") from e


def model_folder(dataset, trainer: str, plans: str, configuration: str) -> str:
    """nnU-Net's results layout: nnUNet_results/DatasetXXX/TRAINER__PLANS__CONFIG; LandmarkError if absent."""
    folder = join(require_path('nnUNet_results'), dataset_name(dataset), f'{trainer}__{plans}__{configuration}')
    if not isdir(folder):
        raise LandmarkError(f"no trained model at {folder}: check -d, -tr, -p and -c")
    return folder


CPU_PLANS = 'nnLandmarkCPUPlans'    # the small CPU plans (nnLandmark_plan_and_preprocess --cpu_plans)
WHOLE_VOLUME = '3d_whole'           # the coarse whole-volume configuration of the CPU plans (--cpu_whole_volume)
