"""Planning and preprocessing: nnU-Net's, unchanged, plus the landmark check and small CPU plans."""
import shutil
from os.path import isdir, isfile, join
from typing import Sequence

import numpy as np
from batchgenerators.utilities.file_and_folder_operations import load_json, save_json
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnlandmark.dataset_conversion.verify import (labels_in_preprocessed, landmarks_lost_in_preprocessing,
                                                  verify_landmark_dataset)
from nnlandmark.errors import LandmarkError
from nnlandmark.landmark_set import names_by_label
from nnlandmark.paths import CPU_PLANS, WHOLE_VOLUME, dataset_name, require_path


def planner_class(name: str):
    """nnU-Net's planners by name, imported directly (its name search imports modules that fail here)."""
    from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import ExperimentPlanner
    from nnunetv2.experiment_planning.experiment_planners.residual_unets.residual_encoder_unet_planners import (
        nnUNetPlannerResEncM, nnUNetPlannerResEncL, nnUNetPlannerResEncXL)
    planners = {c.__name__: c for c in (ExperimentPlanner, nnUNetPlannerResEncM, nnUNetPlannerResEncL,
                                        nnUNetPlannerResEncXL)}
    planners['nnUNetPlanner'] = ExperimentPlanner
    if name not in planners:
        raise LandmarkError(f"unknown planner '{name}'; available: {', '.join(sorted(planners))}")
    return planners[name]


def plan_and_preprocess(dataset_id: int, configurations: Sequence[str] = ('3d_fullres',),
                        planner: str = 'ExperimentPlanner', verify_dataset_integrity: bool = False,
                        num_processes: int = 2) -> str:
    """Fingerprint, plan and preprocess like ``nnUNetv2_plan_and_preprocess``; returns the plans identifier."""
    from nnunetv2.experiment_planning.plan_and_preprocess_api import (
        extract_fingerprint_dataset, plan_experiment_dataset, preprocess_dataset)
    raw = require_path('nnUNet_raw')
    require_path('nnUNet_preprocessed')
    name = dataset_name(dataset_id)
    planner_cls = planner_class(planner)
    present = verify_landmark_dataset(join(raw, name), check_image_values=verify_dataset_integrity)
    try:
        extract_fingerprint_dataset(int(dataset_id), num_processes=num_processes,
                                    check_dataset_integrity=verify_dataset_integrity, verbose=False)
    except (RuntimeError, AssertionError, FileNotFoundError) as e:
        if not verify_dataset_integrity:
            raise
        raise LandmarkError(f"nnU-Net's dataset integrity check failed for {name}: {str(e).splitlines()[0]}") from e
    plans, plans_identifier = plan_experiment_dataset(int(dataset_id), planner_cls)
    preprocess_dataset(int(dataset_id), plans_identifier, tuple(configurations), num_processes=[num_processes])
    _ship_splits(join(raw, name), join(require_path('nnUNet_preprocessed'), name))
    names = names_by_label(load_json(join(raw, name, 'dataset.json')))
    plans_manager = PlansManager(plans)
    for configuration in set(configurations) & set(plans_manager.available_configurations):
        folder = join(require_path('nnUNet_preprocessed'), name,
                      plans_manager.get_configuration(configuration).data_identifier)
        _warn_about_lost_cubes(configuration, folder, present, names)
    return plans_identifier


def _ship_splits(raw_folder: str, preprocessed_folder: str) -> None:
    """A splits_final.json that came with the raw dataset (nnLandmark_convert --folds/--splits, benchmark splits)
    goes where nnU-Net's trainer reads it, unless one is already there."""
    source, target = join(raw_folder, 'splits_final.json'), join(preprocessed_folder, 'splits_final.json')
    if isfile(source) and not isfile(target):
        shutil.copyfile(source, target)
        print(f"using the dataset's cross-validation split: {target}")
    elif isfile(source) and load_json(source) != load_json(target):
        print(f"WARNING: {target} differs from the dataset's {source}; nnU-Net trains with the first. Delete it to "
              f"use the dataset's split.")


def derive_cpu_plans(dataset_id, source_plans: str = 'nnUNetPlans', configuration: str = '3d_fullres',
                     patch_size=(32, 32, 32), features=(16, 32, 64, 128), batch_size: int = 2) -> str:
    """Copy ``source_plans`` into ``nnLandmarkCPUPlans`` with a small network and patch for CPU runs.

    The preprocessed data is shared (same data identifier); only network, patch and batch change.
    """
    folder = join(require_path('nnUNet_preprocessed'), dataset_name(dataset_id))
    source = join(folder, source_plans + '.json')
    if not isfile(source):
        raise LandmarkError(f"{source} not found: run nnLandmark_plan_and_preprocess first")
    plans = load_json(source)
    plans['plans_name'] = CPU_PLANS
    config = plans['configurations'][configuration]
    n = len(features)
    arch = config['architecture']['arch_kwargs']
    arch.update(n_stages=n, features_per_stage=list(features), kernel_sizes=[[3, 3, 3]] * n,
                strides=[[1, 1, 1]] + [[2, 2, 2]] * (n - 1), n_conv_per_stage_decoder=[2] * (n - 1))
    arch['n_blocks_per_stage' if 'n_blocks_per_stage' in arch else 'n_conv_per_stage'] = [2] * n
    config.update(patch_size=list(patch_size), batch_size=batch_size)
    save_json(plans, join(folder, CPU_PLANS + '.json'), sort_keys=False)
    return CPU_PLANS


def add_whole_volume_configuration(dataset_id, plans_identifier: str = CPU_PLANS, max_voxels: int = 64_000,
                                   num_processes: int = 2) -> str:
    """Add and preprocess ``3d_whole`` in ``plans_identifier``: 3d_fullres resampled to a coarser spacing at which the
    median volume has at most ``max_voxels`` voxels, with the whole volume as the patch.

    Why: on a CPU budget a patch that sees every landmark and the volume's borders learns many landmarks far faster
    than small patches, which must tell 30 landmarks apart from local texture alone (benchmarks/learning_efficiency.py).
    """
    from nnunetv2.experiment_planning.plan_and_preprocess_api import preprocess_dataset
    name = dataset_name(dataset_id)
    folder = join(require_path('nnUNet_preprocessed'), name)
    plans_file = join(folder, plans_identifier + '.json')
    if not isfile(plans_file):
        raise LandmarkError(f"{plans_file} not found: run nnLandmark_plan_and_preprocess --cpu_plans first")
    plans = load_json(plans_file)
    fullres = plans['configurations']['3d_fullres']
    shape = np.array(fullres['median_image_size_in_voxels'], float)
    factor = max(1.0, (np.prod(shape) / max_voxels) ** (1 / 3))
    divisor = 2 ** (len(fullres['architecture']['arch_kwargs']['features_per_stage']) - 1)
    patch = (np.ceil(shape / factor / divisor) * divisor).astype(int)
    plans['configurations'][WHOLE_VOLUME] = {
        'inherits_from': '3d_fullres', 'data_identifier': f"{plans_identifier}_{WHOLE_VOLUME}",
        'spacing': [float(s * factor) for s in fullres['spacing']],
        'median_image_size_in_voxels': [float(s / factor) for s in shape], 'patch_size': patch.tolist()}
    save_json(plans, plans_file, sort_keys=False)
    preprocess_dataset(int(dataset_id), plans_identifier, (WHOLE_VOLUME,), num_processes=[num_processes])
    fullres_folder = join(folder, fullres['data_identifier'])  # what 3d_fullres kept; it was checked and warned about
    present = labels_in_preprocessed(fullres_folder) if isdir(fullres_folder) else \
        verify_landmark_dataset(join(require_path('nnUNet_raw'), name))
    names = names_by_label(load_json(join(folder, 'dataset.json')))
    _warn_about_lost_cubes(WHOLE_VOLUME, join(folder, f"{plans_identifier}_{WHOLE_VOLUME}"), present, names)
    return WHOLE_VOLUME


def _warn_about_lost_cubes(configuration: str, preprocessed_folder: str, present, names) -> None:
    lost = landmarks_lost_in_preprocessing(preprocessed_folder, present, names)
    if lost:
        print(f"WARNING: {configuration}: resampling to the target spacing erased {len(lost)} landmark cube(s) "
              f"({', '.join(lost[:5])}{', ...' if len(lost) > 5 else ''}); they would be trained as absent. "
              f"Use larger cubes or a finer target spacing.")
