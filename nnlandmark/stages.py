"""What the planner chose and how a cascade's stages find each other: the trainer a configuration is trained with,
the trained model a command means when no trainer or plans are named, the coarse stage a fine model is read around,
and the search radius around the coarse landmarks, from the coarse stage's own cross-validation errors.

The choices live in the plans (``nnlandmark_trainer``, ``nnlandmark_epochs`` in a configuration, written by
``planning.plan_cpu_stages``), so training and prediction read the same decision. A fine stage is a trainer whose
name carries ``_Fine`` (as every nnlandmark trainer's name starts with ``nnLandmarkTrainer``): it is only meant to be
read within balls around a coarse stage's landmarks.
"""
from os.path import isdir, isfile, join
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch

from nnlandmark.errors import LandmarkError
from nnlandmark.evaluation.crossval import collect_folds, cv_ground_truth
from nnlandmark.evaluation.metrics import radial_errors
from nnlandmark.io.atomic import read_json, write_json_atomic
from nnlandmark.paths import COARSE_STAGES, CPU_PLANS, PLANAR, dataset_name, require_path

PAPER_TRAINER, DEFAULT_PLANS = 'nnLandmarkTrainer', 'nnUNetPlans'
TRAINER_KEY, EPOCHS_KEY = 'nnlandmark_trainer', 'nnlandmark_epochs'   # in a configuration of the plans
INSTANCE_GAP_KEY = 'nnlandmark_instance_gap_mm'   # in the plans: {class: mm}, how closely its instances lie
SEARCH_RADIUS_JSON = 'search_radius.json'   # next to a coarse model: {name: mm}, from its cross-validation
RADIUS_QUANTILE, RADIUS_FACTOR = 0.95, 1.25  # radius = 1.25 x the 95th percentile of the coarse CV errors
DEFAULT_SEARCH_RADIUS_MM = 20.0


def is_fine_stage(trainer_name: str) -> bool:
    return '_Fine' in trainer_name


def planned_trainer(plans: dict, configuration: str) -> str:
    """The trainer the planner chose for ``configuration`` (the paper's where the plans say nothing)."""
    return plans['configurations'].get(configuration, {}).get(TRAINER_KEY, PAPER_TRAINER)


def default_plans(dataset, device: str) -> str:
    """On a CPU, the CPU plans where the planner wrote them; otherwise nnU-Net's default plans."""
    folder = join(require_path('nnUNet_preprocessed'), dataset_name(dataset))
    return CPU_PLANS if device == 'cpu' and isfile(join(folder, CPU_PLANS + '.json')) else DEFAULT_PLANS


def default_configuration(dataset) -> str:
    """3d_fullres, or 2d where a dataset has trained models of 2d and none of 3d_fullres (2D images)."""
    results = join(require_path('nnUNet_results'), dataset_name(dataset))
    trained = {stage_configuration(p) for p in Path(results).glob("*__*__*")} if isdir(results) else set()
    return PLANAR if PLANAR in trained and '3d_fullres' not in trained else '3d_fullres'


def find_model_folder(dataset, configuration: str, trainer: Optional[str] = None, plans: Optional[str] = None,
                      device: Optional[str] = None) -> str:
    """The trained model ``-tr``/``-p`` name, or where they are left out, the one trained with the planner's choice:
    of the model folders of ``configuration``, those of the given plans (else the CPU plans on a CPU and nnU-Net's
    plans on a GPU, where both were trained), then the trainer the plans chose for it."""
    results = join(require_path('nnUNet_results'), dataset_name(dataset))
    folders = sorted(p for p in Path(results).glob(f"*__*__{configuration}") if p.is_dir()) if isdir(results) else []
    candidates = [p for p in folders if (trainer is None or p.name.split('__')[0] == trainer)
                  and (plans is None or p.name.split('__')[1] == plans)]
    if len({p.name.split('__')[1] for p in candidates}) > 1:
        on_gpu = device == 'cuda' if device else torch.cuda.is_available()
        preferred = DEFAULT_PLANS if on_gpu else CPU_PLANS
        candidates = [p for p in candidates if p.name.split('__')[1] == preferred] or candidates
    if len(candidates) > 1:
        chosen = planned_trainer(read_json(join(candidates[0], 'plans.json'), "plans file"), configuration)
        candidates = [p for p in candidates if p.name.split('__')[0] == chosen] or candidates
    if len(candidates) != 1:
        named = f"{trainer or '*'}__{plans or '*'}__{configuration}"
        found = ', '.join(p.name for p in candidates) if candidates else 'none'
        raise LandmarkError(f"{'no trained model' if not candidates else 'several trained models'} {named} in "
                            f"{results} (found: {found}): check -d and -c, or name the model with -tr and -p")
    return str(candidates[0])


def coarse_stage_folder(fine_model_folder: str, plans: Optional[dict] = None) -> Optional[str]:
    """The coarse model a fine stage is read around: the plans' whole-volume (whole-image) configuration
    (``paths.COARSE_STAGES``), trained with the trainer the plans chose for it; None for a model that is not a fine
    stage. ``plans``: the model's, where its folder has no plans.json yet (a training that starts)."""
    trainer, plans_name, configuration = Path(fine_model_folder).name.split('__')
    if not is_fine_stage(trainer):
        return None
    plans = plans or read_json(join(fine_model_folder, 'plans.json'), "plans file")
    coarse = COARSE_STAGES.get(configuration)
    if coarse not in plans['configurations']:
        raise LandmarkError(f"{fine_model_folder} is the fine stage of a cascade, but its plans have no "
                            f"'{coarse}' stage to read it around: re-plan with nnLandmark_plan_and_preprocess "
                            f"-device cpu, or pass -prev_stage_predictions")
    return str(Path(fine_model_folder).parent / f"{planned_trainer(plans, coarse)}__{plans_name}__{coarse}")


def stage_configuration(model_folder: str) -> str:
    """The configuration of a model folder (TRAINER__PLANS__CONFIGURATION)."""
    return Path(model_folder).name.split('__')[-1]


def cv_search_radii(coarse_model_folder: str, dataset) -> Dict[str, float]:
    """{name: mm}: ``RADIUS_FACTOR`` x the ``RADIUS_QUANTILE`` of the coarse model's cross-validation errors of that
    landmark, at least that of all landmarks pooled (a landmark has few validation cases)."""
    predictions, _, _ = collect_folds(coarse_model_folder)
    truth = cv_ground_truth(dataset)[0]
    errors = radial_errors(predictions, truth)
    if not errors:
        raise LandmarkError(f"the validation predictions of {coarse_model_folder} share no case with the ground truth")
    pooled = np.quantile([e.error_mm for e in errors], RADIUS_QUANTILE)
    names = sorted({e.name for e in errors})
    return {name: float(RADIUS_FACTOR * max(pooled, np.quantile([e.error_mm for e in errors if e.name == name],
                                                                 RADIUS_QUANTILE))) for name in names}


def write_search_radii(coarse_model_folder: str, dataset) -> Dict[str, float]:
    radii = cv_search_radii(coarse_model_folder, dataset)
    write_json_atomic(radii, join(coarse_model_folder, SEARCH_RADIUS_JSON))
    return radii


def read_search_radii(coarse_model_folder: str, names: List[str]) -> Optional[Dict[str, float]]:
    """{name: mm} written after the coarse stage's validation, or None when it has not run."""
    path = join(coarse_model_folder, SEARCH_RADIUS_JSON)
    if not isfile(path):
        return None
    radii = read_json(path, "search radius file")
    bad = [n for n in names if not isinstance(radii.get(n), (int, float)) or not np.isfinite(radii[n])
           or radii[n] <= 0]
    if bad:
        raise LandmarkError(f"{path}: no positive search radius for landmark '{bad[0]}': run the coarse stage's "
                            f"validation again (nnLandmark_train ... {stage_configuration(coarse_model_folder)} "
                            f"FOLD --val)")
    return {n: float(radii[n]) for n in names}
