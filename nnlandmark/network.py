"""The landmark network: nnU-Net's architecture from the plans with one output head per landmark (no background).

Training and prediction both build it here, so prediction needs no trainer import; every nnlandmark trainer uses
this architecture (a trainer with another one overrides ``build_network_architecture`` and is loaded by its own code).
"""
from os.path import isfile

import torch
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager

from nnlandmark.errors import LandmarkError
from nnlandmark.landmark_set import landmark_labels

TRAINER_PREFIX = "nnLandmarkTrainer"   # every nnlandmark trainer's class name starts with this


def build_network(configuration_manager: ConfigurationManager, num_input_channels: int, num_landmarks: int,
                  enable_deep_supervision: bool = False) -> torch.nn.Module:
    """The plans' architecture with ``num_landmarks`` output channels."""
    return get_network_from_plans(configuration_manager.network_arch_class_name,
                                  configuration_manager.network_arch_init_kwargs,
                                  configuration_manager.network_arch_init_kwargs_req_import,
                                  num_input_channels, num_landmarks, allow_init=True,
                                  deep_supervision=enable_deep_supervision)


def build_network_for(plans_manager: PlansManager, configuration_manager: ConfigurationManager,
                      dataset_json: dict) -> torch.nn.Module:
    """The network of a trained model, for prediction (no deep supervision)."""
    return build_network(configuration_manager,
                         determine_num_input_channels(plans_manager, configuration_manager, dataset_json),
                         len(landmark_labels(dataset_json)))


def load_checkpoint(path: str) -> dict:
    """An nnU-Net checkpoint of an nnlandmark trainer, or a LandmarkError saying what is wrong with the file."""
    if not isfile(path):
        raise LandmarkError(f"checkpoint {path} not found: train this fold first or pick another with -f/-chk")
    try:
        checkpoint = torch.load(path, map_location='cpu', weights_only=False)
    except Exception as e:  # truncated or not a torch file
        raise LandmarkError(f"checkpoint {path} cannot be read ({type(e).__name__}); it may be truncated") from e
    if not isinstance(checkpoint, dict) or 'network_weights' not in checkpoint:
        raise LandmarkError(f"{path} is not an nnU-Net checkpoint")
    if not str(checkpoint.get('trainer_name')).startswith(TRAINER_PREFIX):
        raise LandmarkError(f"{path} was trained by '{checkpoint.get('trainer_name')}', not by an nnlandmark trainer: "
                            f"segmentation models are predicted with nnUNetv2_predict")
    return checkpoint
