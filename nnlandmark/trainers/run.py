"""Training entry point on nnU-Net's machinery: our trainer registry, nnU-Net's checkpoint/resume and DDP."""
import os
from os.path import isdir, isfile, join
from typing import Optional, Union

import torch
from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnlandmark.errors import LandmarkError
from nnlandmark.io.atomic import read_json
from nnlandmark.landmark_set import read_dataset_json
from nnlandmark.network import load_checkpoint, torch_device
from nnlandmark.paths import COARSE_STAGES, WHOLE_VOLUME, augmentation_workers, dataset_name, require_path
from nnlandmark.stages import coarse_stage_folder, default_plans, planned_trainer, stage_configuration
from nnlandmark.trainers import trainer_class_by_name


def build_trainer(dataset_name_or_id, configuration: str, fold: Union[int, str], trainer_name: Optional[str],
                  plans_identifier: Optional[str], continue_training: bool, device: torch.device):
    """What nnU-Net's get_trainer_from_args does, with our trainer lookup and clear errors. Plans left out: the CPU
    plans on a CPU where they were planned, else nnU-Net's; trainer left out: the one the plans chose for the
    configuration (stages.planned_trainer)."""
    if trainer_name is not None:
        trainer_class_by_name(trainer_name)   # a misspelt -tr is named before anything else is looked up
    require_path('nnUNet_results', writable=True)
    folder = join(require_path('nnUNet_preprocessed'), dataset_name(dataset_name_or_id))
    plans_identifier = plans_identifier or default_plans(dataset_name_or_id, device.type)
    plans_file = join(folder, plans_identifier + '.json')
    if not isfile(plans_file):
        raise LandmarkError(f"{plans_file} not found: run nnLandmark_plan_and_preprocess (or pick -p)")
    plans = read_json(plans_file, "plans file")
    if configuration not in plans['configurations']:
        raise LandmarkError(f"configuration '{configuration}' not in {plans_file}; available: "
                            f"{', '.join(plans['configurations'])}")
    if trainer_name is None:
        trainer_name = planned_trainer(plans, configuration)
        print(f"training {trainer_name} on {plans_identifier} {configuration} (the planned choice; -tr and -p "
              f"override it)")
    trainer_class = trainer_class_by_name(trainer_name)
    data = join(folder, PlansManager(plans).get_configuration(configuration).data_identifier)
    if not isdir(data):
        how = "-device cpu --cpu_whole_volume" if configuration == WHOLE_VOLUME else \
            "-device cpu" if configuration in COARSE_STAGES.values() else f"-c {configuration}"
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
                       validation_only, device, options: dict):
    from nnunetv2.run.run_training import maybe_load_checkpoint
    trainer = build_trainer(dataset, configuration, fold, trainer_name, plans_identifier, continue_training, device)
    trainer.trust_checkpoint = options['trust_checkpoint']
    trainer.export_heatmaps = options['export_heatmaps']
    trainer.disable_checkpointing = options['disable_checkpointing']
    coarse = coarse_stage_folder(trainer.output_folder_base, trainer.plans_manager.plans)  # refused without one
    if coarse and not isdir(join(coarse, f'fold_{fold}', 'validation')):
        print(f"NOTE: the coarse stage of this fine stage is not validated on fold {fold} yet ({coarse}): train "
              f"nnLandmark_train {dataset} {stage_configuration(coarse)} {fold} before this one ends, so that its "
              f"final validation reads around the coarse landmarks as prediction will (or run this again with --val "
              f"afterwards)")
    if validation_only and not isfile(join(trainer.output_folder, 'checkpoint_final.pth')):
        raise LandmarkError(f"no checkpoint_final.pth in {trainer.output_folder}: training of this fold has not "
                            f"finished, so --val cannot run")
    pretrained = options['pretrained_weights']
    if pretrained and not options['trust_checkpoint']:
        load_checkpoint(pretrained)   # weights-only first: nnU-Net then unpickles the file in full
    try:
        maybe_load_checkpoint(trainer, continue_training, validation_only, pretrained)
    except AssertionError as e:      # nnU-Net's check that every layer but the output heads has the same shape
        raise LandmarkError(f"-pretrained_weights {pretrained} do not fit this network (same plans and configuration "
                            f"needed; only the output heads may differ): {str(e).splitlines()[0]}") from None
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
          trainer_name: Optional[str] = None, plans_identifier: Optional[str] = None,
          continue_training: bool = False, validation_only: bool = False, num_gpus: int = 1,
          device: str = 'cuda', trust_checkpoint: bool = False, pretrained_weights: Optional[str] = None,
          export_heatmaps: bool = False, disable_checkpointing: bool = False):
    """Train (or with ``validation_only`` just validate) one fold; returns the trainer (single process), as
    nnUNetv2_train does. Checkpoints read for ``continue_training`` / ``validation_only`` / ``pretrained_weights``
    (another landmark model of the same plans and configuration; its output heads are re-initialised) hold only
    weights and numbers unless ``trust_checkpoint``; ``export_heatmaps`` also writes the final validation's heatmaps
    (``--npz``); ``disable_checkpointing`` writes no checkpoint (nnU-Net's flag, for tests and experiments)."""
    if continue_training and validation_only:
        raise LandmarkError("--c and --val cannot be combined")
    if pretrained_weights and (continue_training or validation_only):
        raise LandmarkError("-pretrained_weights starts a training: it cannot be combined with --c or --val")
    if pretrained_weights and not isfile(pretrained_weights):
        raise LandmarkError(f"-pretrained_weights {pretrained_weights} does not exist")
    augmentation_workers()
    fold = fold if fold == 'all' else int(fold)
    options = dict(trust_checkpoint=trust_checkpoint, pretrained_weights=pretrained_weights,
                   export_heatmaps=export_heatmaps, disable_checkpointing=disable_checkpointing)
    args = (dataset, configuration, fold, trainer_name, plans_identifier, continue_training, validation_only,
            torch_device(device), options)
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
