"""The demo: synthetic data -> plan -> short CPU training -> predict -> evaluate, in a scratch folder."""
import os
import shutil
import time
from os.path import exists, isfile, join
from typing import Optional

import torch

from nnlandmark.dataset_conversion.synthetic import make_synthetic_dataset
from nnlandmark.errors import LandmarkError
from nnlandmark.evaluation.pipeline import evaluate
from nnlandmark.evaluation.reliability import format_error_estimates
from nnlandmark.evaluation.report import format_table
from nnlandmark.inference.predictor import LandmarkPredictor
from nnlandmark.io.predictions import read_world_landmarks
from nnlandmark.landmark_set import LANDMARKS_WORLD_JSON
from nnlandmark.paths import CPU_PLANS
from nnlandmark.planning import plan_and_preprocess, plan_cpu_stages
from nnlandmark.trainers.run import train

DEMO_DATASET_ID = 990
MARKER = '.nnlandmark_demo'


def prepare_workdir(workdir: str) -> None:
    """Start clean, but only ever delete a folder that an earlier demo created."""
    if exists(workdir):
        if not isfile(join(workdir, MARKER)):
            raise LandmarkError(f"{workdir} exists and was not made by nnLandmark_demo; choose another --workdir")
        shutil.rmtree(workdir)
    os.makedirs(workdir)
    open(join(workdir, MARKER), 'w').close()
    for name in ('nnUNet_raw', 'nnUNet_preprocessed', 'nnUNet_results'):
        os.environ[name] = join(workdir, name)
        os.makedirs(os.environ[name])


def run_demo(workdir: str, trainer: Optional[str] = None, n_train: int = 20, n_test: int = 5) -> dict:
    """The whole pipeline on the built-in synthetic dataset; returns the evaluation summary of the test cases."""
    start = time.time()
    prepare_workdir(workdir)
    raw = make_synthetic_dataset(os.environ['nnUNet_raw'], DEMO_DATASET_ID, n_train=n_train, n_test=n_test)
    print(f"[demo] synthetic dataset written to {raw}")
    plan_cpu_stages(DEMO_DATASET_ID, plan_and_preprocess(DEMO_DATASET_ID, ('3d_fullres',)))  # the planner chooses
    os.environ.setdefault('nnUNet_n_proc_DA', '1')  # one augmentation process beside the training
    t_train = time.time()
    trainer_obj = train(DEMO_DATASET_ID, '3d_fullres', 'all', trainer, CPU_PLANS, device='cpu')
    t_train = time.time() - t_train
    predictor = LandmarkPredictor.from_model_folder(trainer_obj.output_folder_base, ['all'],
                                                    device=torch.device('cpu'))
    predictions = join(workdir, 'predictions')
    predictor.predict_folder(join(raw, 'imagesTs'), predictions)
    truth = read_world_landmarks(join(raw, LANDMARKS_WORLD_JSON))[0]
    test_cases = {f[:-len('_0000.nii.gz')] for f in os.listdir(join(raw, 'imagesTs'))}
    summary = evaluate(predictions, {c: truth[c] for c in test_cases}, out_dir=join(predictions, 'evaluation'))
    print(format_table(summary))
    if 'error_estimates' in summary:   # the model calibrated itself in its final validation
        print("\n" + format_error_estimates(summary['error_estimates']))
    iterations = trainer_obj.num_epochs * trainer_obj.num_iterations_per_epoch
    print(f"[demo] training: {t_train:.0f} s for {iterations} iterations ({t_train / iterations:.3f} s/iteration "
          f"incl. validation); total {time.time() - start:.0f} s; spacing 1 mm, so mm = voxels")
    print(f"MRE {summary['mre_mm']:.3f} mm over {summary['n_cases']} cases and {summary['n_landmarks']} landmarks")
    return summary
