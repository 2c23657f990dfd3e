"""nnLandmark_train DATASET CONFIG FOLD [-tr TRAINER] [-p PLANS] [--c] [--val] [-num_gpus N] [-device cpu|cuda|mps] [-pretrained_weights FILE] [--npz] [--disable_checkpointing] [--trust_checkpoint]"""
import argparse
import multiprocessing

import torch

from nnlandmark.commands._cli import positive_int, user_errors_as_one_line
from nnlandmark.network import DEVICES, default_device


@user_errors_as_one_line(on_interrupt="checkpoint_latest.pth is kept; run the same command with --c to continue "
                                      "from it")
def main(argv=None):
    parser = argparse.ArgumentParser(description="Train a landmark model on nnU-Net's machinery.")
    parser.add_argument('dataset_name_or_id')
    parser.add_argument('configuration', help='e.g. 3d_fullres')
    parser.add_argument('fold', help="0-4 or 'all'")
    parser.add_argument('-tr', default=None,
                        help='trainer class from nnlandmark.trainers (default: the one the plans chose for the '
                             'configuration; the paper\'s nnLandmarkTrainer on nnU-Net\'s plans)')
    parser.add_argument('-p', default=None,
                        help='plans identifier, e.g. nnUNetResEncUNetMPlans (default: nnLandmarkCPUPlans on a CPU '
                             'where they were planned, else nnUNetPlans)')
    parser.add_argument('--c', action='store_true', help='continue from the latest checkpoint')
    parser.add_argument('--val', action='store_true', help='only run the final validation of a finished fold')
    parser.add_argument('-num_gpus', type=positive_int, default=1)
    parser.add_argument('-device', default=default_device(), choices=DEVICES)
    parser.add_argument('-pretrained_weights', default=None, metavar='CHECKPOINT',
                        help="start from another landmark model's checkpoint (same plans and configuration; its output "
                             'heads are re-initialised, so the landmarks may differ)')
    parser.add_argument('--npz', action='store_true',
                        help='the final validation also writes each case\'s heatmaps (fold_X/validation/CASE.npz)')
    parser.add_argument('--disable_checkpointing', action='store_true', help='write no checkpoint (nnU-Net\'s flag)')
    parser.add_argument('--trust_checkpoint', action='store_true',
                        help="read the --c / --val / -pretrained_weights checkpoint in full (unpickled, which can "
                             "run code): only for a model whose maker you trust")
    args = parser.parse_args(argv)
    if args.device == 'cpu':
        torch.set_num_threads(multiprocessing.cpu_count())
    from nnlandmark.trainers.run import train
    train(args.dataset_name_or_id, args.configuration, args.fold, args.tr, args.p, args.c, args.val,
          args.num_gpus, args.device, args.trust_checkpoint, args.pretrained_weights, args.npz,
          args.disable_checkpointing)
