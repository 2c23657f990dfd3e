"""Planning and preprocessing: nnU-Net's, unchanged, plus the landmark check and small CPU plans."""
import multiprocessing
import os
import shutil
from collections import Counter
from contextlib import contextmanager
from os.path import isdir, isfile, join
from typing import Dict, List, Optional, Sequence

import numpy as np
from scipy.spatial import cKDTree
from batchgenerators.utilities.file_and_folder_operations import load_json, save_json, subfiles
from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnlandmark.dataset_conversion.verify import (labels_in_preprocessed, landmarks_lost_in_preprocessing,
                                                  verify_landmark_dataset)
from nnlandmark.errors import LandmarkError
from nnlandmark.evaluation.ground_truth import read_instance_truth
from nnlandmark.geometry import itk_order, numpy_order, original_zyx_to_preprocessed
from nnlandmark.io.atomic import read_json
from nnlandmark.labelmaps import instances_from_labelmap, landmarks_from_labelmap, paint_landmarks
from nnlandmark.landmark_set import (landmark_labels, multi_instance, names_by_label, read_dataset_json,
                                     single_landmarks)
from nnlandmark.paths import (COARSE_STAGES, CPU_PLANS, PLANAR, WHOLE_IMAGE, WHOLE_VOLUME, augmentation_workers,
                              dataset_name, require_path)
from nnlandmark.stages import EPOCHS_KEY, INSTANCE_GAP_KEY, TRAINER_KEY
from nnlandmark.trainers.variants import (nnLandmarkTrainer_CPU, nnLandmarkTrainer_CPU_SpatialSoftmax,
                                          nnLandmarkTrainer_CPU_SpatialSoftmax_Fine)

COARSE_TRAINER = nnLandmarkTrainer_CPU_SpatialSoftmax.__name__
FINE_TRAINER = nnLandmarkTrainer_CPU_SpatialSoftmax_Fine.__name__
SINGLE_CPU_TRAINER = nnLandmarkTrainer_CPU.__name__


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


@contextmanager
def _nnunet_planning():
    """Two settings nnU-Net's planning needs, restored afterwards. (1) nnU-Net lists a dataset's files with a
    default-context Pool(12). Forked from a process that already runs threads (torch's, BLAS's, a test runner's), its
    workers can hang for ever on a lock copied mid-use; forkserver workers start from a clean single-threaded process.
    (2) Its planner sets torch's thread count to nnUNet_n_proc_DA while it estimates memory, and 0 threads fail; 0 is
    a valid value for training (augmentation in the training process), so planning sees at least 1."""
    before = multiprocessing.get_start_method(allow_none=True)
    workers = augmentation_workers()
    multiprocessing.set_start_method('forkserver', force=True)
    if workers == 0:
        os.environ['nnUNet_n_proc_DA'] = '1'
    try:
        yield
    finally:
        multiprocessing.set_start_method(before, force=True)
        if workers == 0:
            os.environ['nnUNet_n_proc_DA'] = '0'


def plan_and_preprocess(dataset_id: int, configurations: Optional[Sequence[str]] = None,
                        planner: str = 'ExperimentPlanner', verify_dataset_integrity: bool = False,
                        num_processes: int = 2) -> str:
    """Fingerprint, plan and preprocess like ``nnUNetv2_plan_and_preprocess``; returns the plans identifier.
    ``configurations`` default to 3d_fullres, or for 2D images (volumes of one slice, for which nnU-Net plans
    nothing else) 2d."""
    from nnunetv2.experiment_planning.plan_and_preprocess_api import (
        extract_fingerprint_dataset, plan_experiment_dataset, preprocess_dataset)
    raw = require_path('nnUNet_raw')
    require_path('nnUNet_preprocessed', writable=True)
    name = dataset_name(dataset_id)
    planner_cls = planner_class(planner)
    dataset_json = read_dataset_json(join(raw, name, 'dataset.json'))
    _check_channel_files(join(raw, name), dataset_json)
    present = verify_landmark_dataset(join(raw, name), check_image_values=verify_dataset_integrity)
    try:
        with _nnunet_planning():
            extract_fingerprint_dataset(int(dataset_id), num_processes=num_processes,
                                        check_dataset_integrity=verify_dataset_integrity, verbose=False)
    except (RuntimeError, AssertionError, FileNotFoundError) as e:
        if not verify_dataset_integrity:
            raise
        raise LandmarkError(f"nnU-Net's dataset integrity check failed for {name}: {str(e).splitlines()[0]}") from e
    with _nnunet_planning():
        plans, plans_identifier = plan_experiment_dataset(int(dataset_id), planner_cls)
    _record_instance_gaps(plans, join(require_path('nnUNet_preprocessed'), name, plans_identifier + '.json'),
                          join(raw, name), dataset_json, present)
    plans_manager = PlansManager(plans)
    planned = plans_manager.available_configurations
    planar = '3d_fullres' not in planned
    configurations = list(dict.fromkeys(configurations or [PLANAR if planar else '3d_fullres']))
    unknown = [c for c in configurations if c not in planned]
    if unknown:  # nnU-Net would skip it with an INFO line, and the run would look successful
        raise LandmarkError(f"unknown configuration '{unknown[0]}' (-c); the plans {plans_identifier} of {name} have: "
                            f"{', '.join(planned)}")
    flat = [c for c in configurations if len(plans_manager.get_configuration(c).patch_size) != 3]
    if flat and not planar:
        raise LandmarkError(f"configuration '{flat[0]}' (-c) is 2D; nnlandmark needs a 3D one: "
                            f"{', '.join(c for c in planned if c not in flat)}")
    with _nnunet_planning():
        preprocess_dataset(int(dataset_id), plans_identifier, tuple(configurations), num_processes=[num_processes])
    _ship_splits(join(raw, name), join(require_path('nnUNet_preprocessed'), name), dataset_json['file_ending'])
    names = names_by_label(dataset_json)
    for configuration in configurations:
        folder = join(require_path('nnUNet_preprocessed'), name,
                      plans_manager.get_configuration(configuration).data_identifier)
        _warn_about_lost_cubes(configuration, folder, present, names)
    print(f"{name}: nnU-Net planned {', '.join(planned)} ({plans_identifier}); preprocessed {', '.join(configurations)}")
    return plans_identifier


INSTANCE_GAP_PERCENTILE = 5   # of the instances' distances to their nearest neighbour: how closely a class packs


def instance_gaps_mm(truth: Dict[str, Dict[str, np.ndarray]], classes: Sequence[str]) -> Dict[str, float]:
    """How closely each multi-instance class's instances lie: the 5th percentile, over the cases ({case: {class:
    (K, 3) world mm}}), of each instance's distance to the nearest other instance of its class in its case. A class
    never seen twice in a case is left out."""
    gaps = {}
    for name in classes:
        nearest = [cKDTree(points).query(points, k=2)[0][:, 1] for points in
                   (np.reshape(named.get(name, np.zeros((0, 3))), (-1, 3)) for named in truth.values())
                   if len(points) > 1]
        if nearest:
            gaps[name] = float(np.percentile(np.concatenate(nearest), INSTANCE_GAP_PERCENTILE))
    return gaps


def _record_instance_gaps(plans: dict, plans_file: str, raw_folder: str, dataset_json: dict, training_cases) -> None:
    """Write each multi-instance class's gap (``instance_gaps_mm`` over the training cases) into the plans, where
    the trainer narrows the class's cones to it (``nnLandmarkTrainer.instance_cone_radius``)."""
    classes = multi_instance(dataset_json)
    if not classes:
        return
    truth = read_instance_truth(raw_folder)
    gaps = instance_gaps_mm({case: truth[case] for case in training_cases if case in truth}, classes)
    plans[INSTANCE_GAP_KEY] = gaps
    save_json(plans, plans_file, sort_keys=False)
    for name in classes:
        print(f"multi-instance class '{name}': " + (f"instances {gaps[name]:.1f} mm apart or more (5th percentile)"
                                                    if name in gaps else "never two instances in a training case"))


def _check_channel_files(raw_folder: str, dataset_json: dict) -> None:
    """Every case needs one imagesTr file per channel of dataset.json: nnU-Net pairs all CASE_XXXX files with the case,
    and another count fails deep inside preprocessing or trains the network on the wrong channels. (Counted here, not
    with nnU-Net's get_filenames_of_train_images_and_targets, whose fork pool can deadlock in a threaded process.)"""
    expected = len(dataset_json.get('modality', dataset_json.get('channel_names')))  # nnU-Net's order
    ending = dataset_json['file_ending']
    files = subfiles(join(raw_folder, 'imagesTr'), suffix=ending, join=False)
    for case, count in sorted(Counter(f[:-len(ending) - len('_0000')] for f in files).items()):
        if count != expected:
            raise LandmarkError(f"{join(raw_folder, 'dataset.json')}: 'channel_names' declares {expected} channel(s), "
                                f"but case '{case}' has {count} image file(s) in imagesTr: give every case one "
                                f"{case}_XXXX{ending} file per channel")


def _ship_splits(raw_folder: str, preprocessed_folder: str, file_ending: str) -> None:
    """A splits_final.json that came with the raw dataset (nnLandmark_convert --folds/--splits, benchmark splits)
    goes where nnU-Net's trainer reads it, unless one is already there. One there that names cases the dataset no
    longer has is left from an earlier version of it (``--overwrite``) and is removed, as nnU-Net would train on it."""
    source, target = join(raw_folder, 'splits_final.json'), join(preprocessed_folder, 'splits_final.json')
    if isfile(target):
        splits = read_json(target, "nnU-Net split")
        if not isinstance(splits, list) or not all(isinstance(f, dict) and isinstance(f.get('train'), list)
                                                   and isinstance(f.get('val'), list) for f in splits):
            raise LandmarkError(f"{target} is not an nnU-Net split (a list of {{'train': [...], 'val': [...]}}): "
                                f"delete it")
        named = {str(c) for fold in splits for c in fold['train'] + fold['val']}
        cases = {f[:-len(file_ending)] for f in subfiles(join(raw_folder, 'labelsTr'), suffix=file_ending, join=False)}
        if named - cases:
            os.remove(target)
            print(f"removed {target}: it names {len(named - cases)} case(s) that {raw_folder} no longer has "
                  f"(e.g. {sorted(named - cases)[0]}), left from an earlier version of the dataset")
        elif cases - named and not (isfile(source) and load_json(source) == splits):
            print(f"WARNING: {target} leaves out {len(cases - named)} training case(s) of {raw_folder} (e.g. "
                  f"{sorted(cases - named)[0]}); nnU-Net will not train on them. Delete it to split all cases.")
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
    n, dims = len(features), len(patch_size)
    arch = config['architecture']['arch_kwargs']
    arch.update(n_stages=n, features_per_stage=list(features), kernel_sizes=[[3] * dims] * n,
                strides=[[1] * dims] + [[2] * dims] * (n - 1), n_conv_per_stage_decoder=[2] * (n - 1))
    arch['n_blocks_per_stage' if 'n_blocks_per_stage' in arch else 'n_conv_per_stage'] = [2] * n
    config.update(patch_size=list(patch_size), batch_size=batch_size)
    save_json(plans, join(folder, CPU_PLANS + '.json'), sort_keys=False)
    return CPU_PLANS


PLANAR_FEATURES = (8, 16, 32, 64, 128, 256)   # two stages more than in 3D, for context; 8 features at full size
PLANAR_PATCH_LIMIT = 256                       # pixels per axis: whole images up to 256^2 at their planned spacing
PLANAR_BATCH = 2       # 256^2: about 7 s per 50 iterations on 2 cores (16 features from the start: 18 s; batch 4: 2x)
PLANAR_TRAINER = COARSE_TRAINER   # whole images, as the coarse stage's whole volumes: 19 landmarks on 256^2
# radiographs in 40 epochs gave 1.44 mm with its spatial softmax, 5.58 with BCE alone (nnLandmarkTrainer_CPU; 80: 3.82)


def planar_patch(median_shape, stages: int = len(PLANAR_FEATURES), limit: int = PLANAR_PATCH_LIMIT) -> List[int]:
    """The CPU patch of a 2D dataset: the median image, up to ``limit`` pixels per axis, rounded up to what the
    network's ``stages`` poolings divide. Landmarks on a radiograph are told apart by where they lie in the whole
    picture, which a 2D network on a CPU can afford to see at once."""
    divisor = 2 ** (stages - 1)
    return [int(min(np.ceil(s / divisor) * divisor, limit)) for s in median_shape]


COARSE_STAGE_ABOVE_LANDMARKS = 4         # more landmarks than this: a coarse whole-volume stage first
COARSE_STAGE_ABOVE_PATCHES = 8           # a median volume of more patches than this: likewise
CPU_EPOCHS = {WHOLE_VOLUME: 5, 'fine': 32, 'single': 40, PLANAR: 40}   # x 50 iterations: about 2 + 6 minutes on 2
# cores for 30 cases of 80x96x80 (the epoch's cost does not grow with the data: the whole-volume patch is capped); 5 + 32
# epochs gave 1.05 mm (study) and 1.38 mm (MNI T1 AFIDs) where 10 + 40 gave 1.01 and 1.67 (benchmarks/README.md)


def needs_coarse_stage(n_landmarks: int, median_shape, patch_size) -> Optional[str]:
    """Why a CPU model should start from a whole-volume stage, or None. A 32^3 patch model cannot tell many landmarks
    or a large volume's look-alikes apart on a CPU budget (32 landmarks in 80x96x80 at 2 mm: 94-116 mm with patches
    alone, 5-6 mm whole-volume, 1.0-1.2 mm as a cascade), while 3 landmarks in a 64^3 volume (8 patches) need no
    cascade (the demo: about 1-1.6 mm); the thresholds between are set by those two measurements
    (benchmarks/README.md), not tuned."""
    patches = float(np.prod(median_shape) / np.prod(patch_size))
    if n_landmarks > COARSE_STAGE_ABOVE_LANDMARKS:
        return f"{n_landmarks} landmarks (> {COARSE_STAGE_ABOVE_LANDMARKS})"
    if patches > COARSE_STAGE_ABOVE_PATCHES:
        return f"the median volume holds {patches:.0f} patches (> {COARSE_STAGE_ABOVE_PATCHES})"
    return None


def plan_cpu_stages(dataset_id, source_plans: str = 'nnUNetPlans', force_coarse_stage: bool = False,
                    num_processes: int = 2) -> List[str]:
    """The CPU plans, with a coarse whole-volume stage where ``needs_coarse_stage`` (or ``force_coarse_stage``) says
    so, and in each configuration the trainer and epochs to train it with (``stages.TRAINER_KEY``/``EPOCHS_KEY``);
    prints the decision and why. Returns the configurations to train, coarse first. 2D images: ``_plan_cpu_planar``."""
    folder = join(require_path('nnUNet_preprocessed'), dataset_name(dataset_id))
    if '3d_fullres' not in load_json(join(folder, source_plans + '.json'))['configurations']:
        return _plan_cpu_planar(dataset_id, source_plans, force_coarse_stage, num_processes)
    derive_cpu_plans(dataset_id, source_plans)
    plans_file = join(folder, CPU_PLANS + '.json')
    plans = load_json(plans_file)
    fullres = plans['configurations']['3d_fullres']
    n_landmarks = len(landmark_labels(load_json(join(folder, 'dataset.json'))))
    reason = needs_coarse_stage(n_landmarks, fullres['median_image_size_in_voxels'], fullres['patch_size']) or \
        ("--cpu_whole_volume" if force_coarse_stage else None)
    if reason:
        add_coarse_configuration(dataset_id, CPU_PLANS, num_processes=num_processes)
        plans = load_json(plans_file)
        plans['configurations'][WHOLE_VOLUME].update({TRAINER_KEY: COARSE_TRAINER,
                                                      EPOCHS_KEY: CPU_EPOCHS[WHOLE_VOLUME]})
        plans['configurations']['3d_fullres'].update({TRAINER_KEY: FINE_TRAINER, EPOCHS_KEY: CPU_EPOCHS['fine']})
        stages = [WHOLE_VOLUME, '3d_fullres']
        print(f"{CPU_PLANS}: a cascade, because of {reason}: {WHOLE_VOLUME} (whole volume at "
              f"{_spacing(plans, WHOLE_VOLUME)} mm, {COARSE_TRAINER}, {CPU_EPOCHS[WHOLE_VOLUME]} epochs), then "
              f"3d_fullres read around its landmarks ({FINE_TRAINER}, {CPU_EPOCHS['fine']} epochs)")
    else:
        plans['configurations']['3d_fullres'].update({TRAINER_KEY: SINGLE_CPU_TRAINER,
                                                      EPOCHS_KEY: CPU_EPOCHS['single']})
        stages = ['3d_fullres']
        print(f"{CPU_PLANS}: one stage, 3d_fullres ({SINGLE_CPU_TRAINER}, {CPU_EPOCHS['single']} epochs): "
              f"{_channels(load_json(join(folder, 'dataset.json')))} in a median volume of "
              f"{np.prod(fullres['median_image_size_in_voxels']) / np.prod(fullres['patch_size']):.0f} patches")
    save_json(plans, plans_file, sort_keys=False)
    return stages


def _plan_cpu_planar(dataset_id, source_plans: str, force_coarse_stage: bool, num_processes: int) -> List[str]:
    """The CPU plans of a 2D dataset: its 2d configuration with a whole-image patch (``planar_patch``), or where the
    median image is larger than that patch, a cascade: the whole image at a coarser spacing (2d_whole), then 2d read
    around its landmarks. (A 256^2 patch of a 2000^2 cephalogram sees an eighth of the skull, and cannot tell
    landmarks apart from local texture, as 3D patches could not.)"""
    if force_coarse_stage:
        raise LandmarkError(f"--cpu_whole_volume adds the 3D stage {WHOLE_VOLUME}; 2D images get their coarse stage "
                            f"{WHOLE_IMAGE} where they exceed {PLANAR_PATCH_LIMIT} pixels")
    folder = join(require_path('nnUNet_preprocessed'), dataset_name(dataset_id))
    median = load_json(join(folder, source_plans + '.json'))['configurations'][PLANAR]['median_image_size_in_voxels']
    patch = planar_patch(median)
    derive_cpu_plans(dataset_id, source_plans, PLANAR, patch, PLANAR_FEATURES, PLANAR_BATCH)
    size = f"a median image of {'x'.join(str(round(s)) for s in median)} pixels"
    stages = [PLANAR]
    if max(median) > PLANAR_PATCH_LIMIT:
        stages = [add_coarse_configuration(dataset_id, CPU_PLANS, PLANAR, PLANAR_PATCH_LIMIT ** 2, PLANAR_PATCH_LIMIT,
                                           num_processes), PLANAR]
    plans_file = join(folder, CPU_PLANS + '.json')
    plans = load_json(plans_file)
    if len(stages) == 1:
        plans['configurations'][PLANAR].update({TRAINER_KEY: PLANAR_TRAINER, EPOCHS_KEY: CPU_EPOCHS[PLANAR]})
        print(f"{CPU_PLANS}: 2D images, one stage, {PLANAR} ({PLANAR_TRAINER}, {CPU_EPOCHS[PLANAR]} epochs, patch "
              f"{'x'.join(map(str, patch))} of {size})")
    else:
        plans['configurations'][WHOLE_IMAGE].update({TRAINER_KEY: PLANAR_TRAINER, EPOCHS_KEY: CPU_EPOCHS[PLANAR]})
        plans['configurations'][PLANAR].update({TRAINER_KEY: FINE_TRAINER, EPOCHS_KEY: CPU_EPOCHS['fine']})
        print(f"{CPU_PLANS}: 2D images, a cascade, because {size} is larger than a {PLANAR_PATCH_LIMIT}^2 patch: "
              f"{WHOLE_IMAGE} (whole image at {_spacing(plans, WHOLE_IMAGE)} mm, {PLANAR_TRAINER}, "
              f"{CPU_EPOCHS[PLANAR]} epochs), then {PLANAR} read around its landmarks ({FINE_TRAINER}, "
              f"{CPU_EPOCHS['fine']} epochs, patch {'x'.join(map(str, patch))})")
    save_json(plans, plans_file, sort_keys=False)
    return stages


def _channels(dataset_json: dict) -> str:
    """'3 landmark(s)', or '2 landmark(s) and 1 multi-instance class(es)': what the heatmap channels are."""
    classes = len(multi_instance(dataset_json))
    singles = f"{len(landmark_labels(dataset_json)) - classes} landmark(s)"
    return singles + (f" and {classes} multi-instance class(es)" if classes else "")


def _spacing(plans: dict, configuration: str) -> str:
    return "x".join(f"{s:.2g}" for s in plans['configurations'][configuration]['spacing'])


class CubeKeepingPreprocessor(DefaultPreprocessor):
    """nnU-Net's preprocessing, except that each landmark's cube is painted anew on the resampled grid at its centre
    of mass, not resampled: a coarse stage shrinks the volume several-fold, and nnU-Net's label resampling samples a
    3-voxel cube at sparse points (at 3.2x coarser 30 % of the cubes vanished, at 5x 83 %, at 9.4x 98 %)."""

    def run_case_npy(self, data, seg, properties, plans_manager, configuration_manager, dataset_json):
        data, resampled, properties = super().run_case_npy(data, seg, properties, plans_manager, configuration_manager,
                                                           dataset_json)
        if seg is None:
            return data, resampled, properties
        centres = {name: [centre] for name, centre in
                   landmarks_from_labelmap(seg[0], single_landmarks(dataset_json)).items()}
        labels = landmark_labels(dataset_json)
        centres.update({name: instances_from_labelmap(seg[0], labels[name]) for name in multi_instance(dataset_json)})
        points = {(name, k): itk_order(original_zyx_to_preprocessed(numpy_order(centre), resampled.shape[1:],
                                                                    properties, plans_manager.transpose_forward))
                  for name, instances in centres.items() for k, centre in enumerate(instances)}
        values = {key: labels[key[0]] for key in points}
        cubes = paint_landmarks(itk_order(resampled.shape[1:]), points, values, strict=False)
        seg = np.where(cubes > 0, cubes, np.minimum(resampled[0], 0))[None].astype(np.int16)
        properties['class_locations'] = self._sample_foreground_locations(
            seg, plans_manager.get_label_manager(dataset_json).foreground_labels, verbose=self.verbose)
        return data, seg, properties


def add_coarse_configuration(dataset_id, plans_identifier: str = CPU_PLANS, fine: str = '3d_fullres',
                             max_voxels: int = 64_000, max_side: Optional[int] = None, num_processes: int = 2) -> str:
    """Add and preprocess the coarse stage of ``fine`` (``paths.COARSE_STAGES``: 3d_whole, or 2d_whole of 2D images)
    in ``plans_identifier``: ``fine`` resampled to a coarser spacing at which the median volume (image) has at most
    ``max_voxels`` voxels (pixels) and at most ``max_side`` along any axis, with the whole volume as the patch.
    Returns its name.

    Why: on a CPU budget a patch that sees every landmark and the volume's borders learns many landmarks far faster
    than small patches, which must tell 30 landmarks apart from local texture alone (benchmarks/learning_efficiency.py).
    """
    coarse = COARSE_STAGES[fine]
    name = dataset_name(dataset_id)
    folder = join(require_path('nnUNet_preprocessed'), name)
    plans_file = join(folder, plans_identifier + '.json')
    if not isfile(plans_file):
        raise LandmarkError(f"{plans_file} not found: run nnLandmark_plan_and_preprocess --cpu_plans first")
    plans = load_json(plans_file)
    planned = plans['configurations'][fine]
    shape = np.array(planned['median_image_size_in_voxels'], float)
    factor = max(1.0, (np.prod(shape) / max_voxels) ** (1 / len(shape)), max(shape) / (max_side or np.inf))
    divisor = 2 ** (len(planned['architecture']['arch_kwargs']['features_per_stage']) - 1)
    patch = (np.ceil(shape / factor / divisor) * divisor).astype(int)
    plans['configurations'][coarse] = {
        'inherits_from': fine, 'data_identifier': f"{plans_identifier}_{coarse}",
        'spacing': [float(s * factor) for s in planned['spacing']],
        'median_image_size_in_voxels': [float(s / factor) for s in shape], 'patch_size': patch.tolist()}
    save_json(plans, plans_file, sort_keys=False)
    with _nnunet_planning():
        CubeKeepingPreprocessor(verbose=False).run(int(dataset_id), coarse, plans_identifier, num_processes)
    fine_folder = join(folder, planned['data_identifier'])  # what the fine stage kept; it was checked and warned about
    present = labels_in_preprocessed(fine_folder) if isdir(fine_folder) else \
        verify_landmark_dataset(join(require_path('nnUNet_raw'), name))
    names = names_by_label(load_json(join(folder, 'dataset.json')))
    _warn_about_lost_cubes(coarse, join(folder, f"{plans_identifier}_{coarse}"), present, names)
    return coarse


def _warn_about_lost_cubes(configuration: str, preprocessed_folder: str, present, names) -> None:
    lost = landmarks_lost_in_preprocessing(preprocessed_folder, present, names)
    if lost:
        print(f"WARNING: {configuration}: resampling to the target spacing erased {len(lost)} landmark cube(s) "
              f"({', '.join(lost[:5])}{', ...' if len(lost) > 5 else ''}); they would be trained as absent. "
              f"Use larger cubes or a finer target spacing.")
