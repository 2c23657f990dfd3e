"""Final validation of a fold: predict the validation cases, write CASE.json, evaluate them in mm."""
import os
from os.path import isdir, join
from typing import Optional, Tuple

import numpy as np
import torch
from torch import distributed as dist

from nnlandmark.errors import LandmarkError
from nnlandmark.evaluation.crossval import cv_instance_truth
from nnlandmark.evaluation.instances import format_instances
from nnlandmark.evaluation.pipeline import evaluate
from nnlandmark.evaluation.report import format_table
from nnlandmark.inference.cascade import WEAK_FINE_LIKELIHOOD
from nnlandmark.inference.predictor import SEARCH_RADIUS_MM, LandmarkPredictor, SearchRadius
from nnlandmark.io.atomic import write_json_atomic
from nnlandmark.io.predictions import Points, case_prediction, read_predictions
from nnlandmark.labelmaps import read_label_maps
from nnlandmark.landmark_set import landmark_names, multi_instance
from nnlandmark.paths import COARSE_STAGES
from nnlandmark.presence import calibrate_instances, candidate_instances
from nnlandmark.stages import coarse_stage_folder, read_search_radii, write_search_radii
from nnlandmark.uncertainty import calibrate_errors, unsteady_radius


def validate_fold(trainer) -> dict:
    """Uses the trainer's network as is; ground truth are the label cubes in ``gt_segmentations`` (presence from the
    dataset's ``landmarks_may_be_absent``), so the summary also has the detection report where it applies."""
    predictor = LandmarkPredictor(device=trainer.device, allow_tqdm=False,   # every candidate instance: calibrated
                                  instance_detection=candidate_instances(trainer.dataset_json))   # afterwards
    predictor.manual_initialization(trainer.network, trainer.plans_manager, trainer.configuration_manager, None,
                                    trainer.dataset_json, trainer.__class__.__name__,
                                    trainer.inference_allowed_mirroring_axes)
    output_folder = join(trainer.output_folder, 'validation')
    os.makedirs(output_folder, exist_ok=True)
    _, val_keys = trainer.do_split()
    if trainer.is_ddp:
        val_keys = val_keys[trainer.local_rank::dist.get_world_size()]
    dataset = trainer.dataset_class(trainer.preprocessed_dataset_folder, val_keys)
    priors, radii, fallback = _coarse_stage(trainer)
    for key in dataset.identifiers:
        data, _, _, properties = dataset.load_case(key)
        landmarks, instances = predictor.predict_preprocessed(torch.from_numpy(np.asarray(data[:])), properties,
                                                              priors.get(key) if priors else None, radii, fallback,
                                                              join(output_folder, f'{key}.npz')
                                                              if trainer.export_heatmaps else None)
        write_json_atomic(case_prediction(key, key + trainer.dataset_json['file_ending'], landmarks,
                                          instances=instances), join(output_folder, f'{key}.json'))
    if trainer.is_ddp:
        dist.barrier()
    if trainer.local_rank != 0:
        return {}
    base = trainer.preprocessed_dataset_folder_base
    truth = read_label_maps(join(base, 'dataset.json'), [join(base, 'gt_segmentations')], val_keys)
    instances, detection = _calibrate_instances(trainer) if multi_instance(trainer.dataset_json) else (None, None)
    summary = evaluate(output_folder, truth, out_dir=output_folder, plots=False, instance_truth=instances,
                       instance_detection=detection)
    trainer.print_to_log_file("Final validation of this fold:\n" + format_table(summary) +
                              ("\n" + format_instances(summary["instances"]) if "instances" in summary else ""),
                              add_timestamp=False)
    if 'mre_mm' in summary:   # a dataset of multi-instance classes only has none
        trainer.logger.log_summary('final_val/mre_mm', summary['mre_mm'])
    if trainer.configuration_name in COARSE_STAGES.values():  # the fine stage searches this far around it
        radii = write_search_radii(trainer.output_folder_base, trainer.plans_manager.dataset_name)
        trainer.print_to_log_file(f"search radius of a fine stage around these landmarks, from the validated folds: "
                                  f"{min(radii.values()):.1f}-{max(radii.values()):.1f} mm", add_timestamp=False)
    _calibrate(trainer)
    return summary


def _calibrate(trainer) -> None:
    """Refit the model's error calibration on the folds validated so far, so that predictions carry
    expected_error_mm and radius_mm without a further command; too few validated cases only leave it as it was."""
    try:
        calibration = calibrate_errors(trainer.output_folder_base, trainer.plans_manager.dataset_name)
    except LandmarkError as e:
        trainer.print_to_log_file(f"error calibration not refitted: {e}", add_timestamp=False)
        return
    trainer.print_to_log_file(f"error calibration from {calibration['n_cases']} validated cases: a "
                              f"{calibration['coverage']:.0%} radius of median {calibration['median_radius_mm']:.2f} "
                              f"mm (one radius for all would be {calibration['global_radius_mm']:.2f} mm)" +
                              (f"; WARNING: {unsteady_radius(calibration)}" if unsteady_radius(calibration) else ""),
                              add_timestamp=False)


def _calibrate_instances(trainer) -> Tuple[dict, Optional[dict]]:
    """Refit the multi-instance classes' thresholds and NMS distances on the folds validated so far (their
    validation lists every candidate peak); returns the instance ground truth and {class: (threshold, NMS mm)},
    with which the fold's summary judges its candidates as the calibrated model decodes them."""
    truth = cv_instance_truth(trainer.plans_manager.dataset_name)
    try:
        calibration = calibrate_instances(trainer.output_folder_base, truth)
    except LandmarkError as e:
        trainer.print_to_log_file(f"instance calibration not refitted: {e}", add_timestamp=False)
        return truth, None
    for name, entry in calibration.items():
        trainer.print_to_log_file(f"instances of '{name}' from {entry['n_cases']} validated cases: likelihood >= "
                                  f"{entry['threshold']:.3f}, {entry['nms_mm']:.1f} mm apart, F1 {entry['f1']:.3f}",
                                  add_timestamp=False)
    return truth, {name: (entry['threshold'], entry['nms_mm']) for name, entry in calibration.items()}


def _coarse_stage(trainer) -> Tuple[Optional[Points], SearchRadius, Optional[float]]:
    """(priors, search radii, fallback likelihood) that validate a fine stage as it is predicted: within balls around
    its coarse stage's validation landmarks of the same fold (nnU-Net validates 3d_cascade_fullres on the 3d_lowres
    predictions likewise); the whole image for any other model, or where the coarse fold is not validated yet."""
    coarse = coarse_stage_folder(trainer.output_folder_base, trainer.plans_manager.plans)
    if coarse is None:
        return None, SEARCH_RADIUS_MM, None
    folder = join(coarse, f'fold_{trainer.fold}', 'validation')
    if not isdir(folder):
        trainer.print_to_log_file(f"WARNING: the coarse stage has no validation of fold {trainer.fold} ({folder}): "
                                  f"this fine stage is validated on the whole image, not as it is used; validate "
                                  f"again with --val once the coarse fold is trained")
        return None, SEARCH_RADIUS_MM, None
    radii = read_search_radii(coarse, landmark_names(trainer.dataset_json)) or SEARCH_RADIUS_MM
    trainer.print_to_log_file(f"validating within the coarse stage's landmarks of {folder}", add_timestamp=False)
    return read_predictions(folder)[0], radii, WEAK_FINE_LIKELIHOOD
