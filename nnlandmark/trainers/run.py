"""Training entry point on nnU-Net's machinery: our trainer registry, nnU-Net's checkpoint/resume and DDP."""
import os
from os.path import isdir, isfile, join
from typing import Union

import torch
from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnlandmark.errors import LandmarkError
from nnlandmark.io.atomic import read_json
from nnlandmark.landmark_set import read_dataset_json
from nnlandmark.paths import WHOLE_VOLUME, dataset_name, require_path
from nnlandmark.trainers import trainer_class_by_name


def build_trainer(dataset_name_or_id, configuration: str, fold: Union[int, str], trainer_name: str,
                  plans_identifier: str, continue_training: bool, device: torch.device):
    """What nnU-Net's get_trainer_from_args does, with our trainer lookup and clear errors."""
    trainer_class = trainer_class_by_name(trainer_name)
    require_path('nnUNet_results', writable=True)
    folder = join(require_path('nnUNet_preprocessed'), dataset_name(dataset_name_or_id))
    plans_file = join(folder, plans_identifier + '.json')
    if not isfile(plans_file):
        raise LandmarkError(f"{plans_file} not found: run nnLandmark_plan_and_preprocess (or pick -p)")
    plans = read_json(plans_file, "plans file")
    if configuration not in plans['configurations']:
        raise LandmarkError(f"configuration '{configuration}' not in {plans_file}; available: "
                            f"{', '.join(plans['configurations'])}")
    data = join(folder, PlansManager(plans).get_configuration(configuration).data_identifier)
    if not isdir(data):
        how = "--cpu_plans --cpu_whole_volume" if configuration == WHOLE_VOLUME else f"-c {configuration}"
        raise LandmarkError(f"{data} not found: configuration '{configuration}' was planned but not preprocessed; run "
                            f"nnLandmark_plan_and_preprocess -d {dataset_name_or_id} {how}")
    if fold != 'all' and not isfile(join(folder, 'splits_final.json')):
        cases = infer_dataset_class(data).get_identifiers(data)
        if len(cases) < 5:
            raise LandmarkError(f"{dataset_name(dataset_name_or_id)} has {len(cases)} training case(s); nnU-Net's "
                                f"5-fold cross-validation needs 5: train fold 'all', or convert with --folds K "
                                f"(K <= {len(cases)}) to write your own splits")
    plans['continue_training'] = continue_training
    return trainer_class(plans=plans, configuration=configuration, fold=fold,
                         dataset_json=read_dataset_json(join(folder, 'dataset.json')), device=device)


def _train_one_process(dataset, configuration, fold, trainer_name, plans_identifier, continue_training,
                       validation_only, device, trust_checkpoint):
    from nnunetv2.run.run_training import maybe_load_checkpoint
    trainer = build_trainer(dataset, configuration, fold, trainer_name, plans_identifier, continue_training, device)
    trainer.trust_checkpoint = trust_checkpoint
    if validation_only and not isfile(join(trainer.output_folder, 'checkpoint_final.pth')):
        raise LandmarkError(f"no checkpoint_final.pth in {trainer.output_folder}: training of this fold has not "
                            f"finished, so --val cannot run")
    maybe_load_checkpoint(trainer, continue_training, validation_only)
    if not validation_only:
        trainer.run_training()
    trainer.perform_actual_validation()
    return trainer


def _ddp_worker(rank, world_size, *args):
    import torch.distributed as dist
    dist.init_process_group('nccl', rank=rank, world_size=world_size)
    torch.cuda.set_device(torch.device('cuda', rank))
    try:
        _train_one_process(*args)
    finally:
        dist.destroy_process_group()


def train(dataset, configuration: str = '3d_fullres', fold: Union[int, str] = 0,
          trainer_name: str = 'nnLandmarkTrainer', plans_identifier: str = 'nnUNetPlans',
          continue_training: bool = False, validation_only: bool = False, num_gpus: int = 1,
          device: str = 'cuda', trust_checkpoint: bool = False):
    """Train (or with ``validation_only`` just validate) one fold; returns the trainer (single process). Checkpoints
    read for ``continue_training`` / ``validation_only`` hold only weights and numbers unless ``trust_checkpoint``."""
    if continue_training and validation_only:
        raise LandmarkError("--c and --val cannot be combined")
    fold = fold if fold == 'all' else int(fold)
    if device == 'cuda' and not torch.cuda.is_available():
        raise LandmarkError("-device cuda requested but no CUDA GPU is available; use -device cpu")
    args = (dataset, configuration, fold, trainer_name, plans_identifier, continue_training, validation_only,
            torch.device(device), trust_checkpoint)
    if num_gpus > 1:
        if device != 'cuda':
            raise LandmarkError("-num_gpus > 1 needs -device cuda (nnU-Net's DDP)")
        import torch.multiprocessing as mp
        from nnunetv2.run.run_training import find_free_network_port
        os.environ['MASTER_ADDR'] = 'localhost'
        os.environ.setdefault('MASTER_PORT', str(find_free_network_port()))
        mp.spawn(_ddp_worker, args=(num_gpus, *args), nprocs=num_gpus, join=True)
        return None
    return _train_one_process(*args)
