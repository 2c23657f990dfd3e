"""The landmark network: nnU-Net's architecture from the plans with one output head per landmark (no background).

Training and prediction both build it here, so prediction needs no trainer import; every nnlandmark trainer uses
this architecture (a trainer with another one overrides ``build_network_architecture`` and is loaded by its own code).
"""
import pickle
import re
from os.path import isfile

import numpy as np
import torch
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager

from nnlandmark.errors import LandmarkError
from nnlandmark.landmark_set import landmark_labels

TRAINER_PREFIX = "nnLandmarkTrainer"   # every nnlandmark trainer's class name starts with this

# Besides tensors, dicts, lists and torch.device (allowed by torch itself), nnU-Net checkpoints hold numpy scalars
# (the loss and landmark-error log, '_best_ema'): numpy's scalar constructor, pickled under numpy.core by numpy 1.x and
# numpy._core by numpy 2, np.dtype and the dtype classes of plain numbers.
_NUMPY_SCALAR = np.float64(0).__reduce__()[0]
CHECKPOINT_GLOBALS = [(_NUMPY_SCALAR, 'numpy.core.multiarray.scalar'), (_NUMPY_SCALAR, 'numpy._core.multiarray.scalar'),
                      np.dtype] + sorted({type(np.dtype(t)) for t in (np.bool_, np.int8, np.int16, np.int32, np.int64,
                                                                       np.uint8, np.uint16, np.uint32, np.uint64,
                                                                       np.float16, np.float32, np.float64)}, key=str)


DEVICES = ('cpu', 'cuda', 'mps')


def torch_device(name: str) -> torch.device:
    """``-device`` as a torch device, or a LandmarkError where this machine does not have it."""
    available = {'cpu': True, 'cuda': torch.cuda.is_available(), 'mps': torch.backends.mps.is_available()}
    if name not in available:
        raise LandmarkError(f"unknown device '{name}': choose one of {', '.join(DEVICES)}")
    if not available[name]:
        what = "no CUDA GPU" if name == 'cuda' else "no Apple MPS device"
        raise LandmarkError(f"-device {name} requested but {what} is available; use -device cpu")
    return torch.device(name)


def default_device() -> str:
    return 'cuda' if torch.cuda.is_available() else 'mps' if torch.backends.mps.is_available() else 'cpu'


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


def load_checkpoint(path: str, trust: bool = False) -> dict:
    """An nnU-Net checkpoint of an nnlandmark trainer, or a LandmarkError saying what is wrong with the file.

    A checkpoint is a pickle, and unpickling can run any code: unless ``trust``, only tensors, numbers and the types
    in CHECKPOINT_GLOBALS are read, so that a shared model cannot run code on the user's machine."""
    if not isfile(path):
        raise LandmarkError(f"checkpoint {path} not found: train this fold first or pick another with -f/-chk")
    try:
        if trust:
            checkpoint = torch.load(path, map_location='cpu', weights_only=False)
        else:
            with torch.serialization.safe_globals(CHECKPOINT_GLOBALS):
                checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:  # refused by the weights-only reader, truncated, or not a torch file
        unsafe = _unsafe_globals(path, str(e)) if isinstance(e, pickle.UnpicklingError) and not trust else []
        if unsafe:
            refusal = (f"checkpoint {path} holds {', '.join(unsafe)}, not only weights and numbers, and loading it "
                       f"could run code: pass --trust_checkpoint only if you trust its maker")
            raise LandmarkError(refusal) from None
        raise LandmarkError(f"checkpoint {path} cannot be read ({type(e).__name__}); it may be truncated") from e
    if not isinstance(checkpoint, dict) or 'network_weights' not in checkpoint:
        raise LandmarkError(f"{path} is not an nnU-Net checkpoint")
    if not str(checkpoint.get('trainer_name')).startswith(TRAINER_PREFIX):
        raise LandmarkError(f"{path} was trained by '{checkpoint.get('trainer_name')}', not by an nnlandmark trainer: "
                            f"segmentation models are predicted with nnUNetv2_predict")
    return checkpoint


def _unsafe_globals(path: str, refusal: str) -> list:
    """What a refused checkpoint would construct or call, as torch names it in the file's pickle or, for a class that
    the pickle builds on the fly, in its refusal; [] when that cannot be told."""
    with torch.serialization.safe_globals(CHECKPOINT_GLOBALS):
        try:
            listed = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        except Exception:  # not a zip checkpoint
            listed = []
    return listed or re.findall(r"but got <class '([^']+)'>", refusal)
