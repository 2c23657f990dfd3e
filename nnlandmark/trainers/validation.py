"""Final validation of a fold: predict the validation cases, write CASE.json, evaluate them in mm."""
import os
from os.path import join

import numpy as np
import torch
from torch import distributed as dist

from nnlandmark.evaluation.pipeline import evaluate
from nnlandmark.evaluation.report import format_table
from nnlandmark.inference.predictor import LandmarkPredictor
from nnlandmark.io.atomic import write_json_atomic
from nnlandmark.io.predictions import case_prediction
from nnlandmark.labelmaps import read_label_maps


def validate_fold(trainer) -> dict:
    """Uses the trainer's network as is; ground truth are the label cubes in ``gt_segmentations`` (presence from the
    dataset's ``landmarks_may_be_absent``), so the summary also has the detection report where it applies."""
    predictor = LandmarkPredictor(device=trainer.device, allow_tqdm=False)
    predictor.manual_initialization(trainer.network, trainer.plans_manager, trainer.configuration_manager, None,
                                    trainer.dataset_json, trainer.__class__.__name__,
                                    trainer.inference_allowed_mirroring_axes)
    output_folder = join(trainer.output_folder, 'validation')
    os.makedirs(output_folder, exist_ok=True)
    _, val_keys = trainer.do_split()
    if trainer.is_ddp:
        val_keys = val_keys[trainer.local_rank::dist.get_world_size()]
    dataset = trainer.dataset_class(trainer.preprocessed_dataset_folder, val_keys)
    for key in dataset.identifiers:
        data, _, _, properties = dataset.load_case(key)
        landmarks = predictor.predict_preprocessed(torch.from_numpy(np.asarray(data[:])), properties)
        write_json_atomic(case_prediction(key, key + trainer.dataset_json['file_ending'], landmarks),
                          join(output_folder, f'{key}.json'))
    if trainer.is_ddp:
        dist.barrier()
    if trainer.local_rank != 0:
        return {}
    base = trainer.preprocessed_dataset_folder_base
    truth = read_label_maps(join(base, 'dataset.json'), [join(base, 'gt_segmentations')], val_keys)
    summary = evaluate(output_folder, truth, out_dir=output_folder, plots=False)
    trainer.print_to_log_file("Final validation of this fold:\n" + format_table(summary), add_timestamp=False)
    trainer.logger.log_summary('final_val/mre_mm', summary['mre_mm'])
    return summary
