"""Final validation of a fold: predict the validation cases, write CASE.json, summarise MRE in mm."""
import os
from os.path import join

import numpy as np
import torch
from torch import distributed as dist

from nnlandmark.evaluation import evaluate, format_table
from nnlandmark.evaluation.io import load_label_folder
from nnlandmark.inference.prediction_files import case_prediction, write_json_atomic
from nnlandmark.inference.predictor import LandmarkPredictor


def validate_fold(trainer) -> dict:
    """Uses the trainer's network as is; ground truth are the label cubes in ``gt_segmentations``."""
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
    labels = {n: int(v) for n, v in trainer.dataset_json['labels'].items() if int(v) != 0}
    gt = load_label_folder(join(trainer.preprocessed_dataset_folder_base, 'gt_segmentations'), labels,
                           trainer.dataset_json['file_ending'])
    summary = evaluate(output_folder, {k: gt[k] for k in val_keys if k in gt}, out_dir=output_folder)
    trainer.print_to_log_file("Final validation of this fold:\n" + format_table(summary), add_timestamp=False)
    trainer.logger.log_summary('final_val/mre_mm', summary['mre_mm'])
    return summary
