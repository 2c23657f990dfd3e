"""nnLandmark_train DATASET CONFIG FOLD [-tr TRAINER] [-p PLANS] [--c] [--val] [-num_gpus N] [-device cpu|cuda] [--trust_checkpoint]"""
import argparse
import multiprocessing

import torch

from nnlandmark.commands._cli import positive_int, user_errors_as_one_line


@user_errors_as_one_line(on_interrupt="checkpoint_latest.pth is kept; run the same command with --c to continue "
                                      "from it")
def main(argv=None):
    parser = argparse.ArgumentParser(description="Train a landmark model on nnU-Net's machinery.")
    parser.add_argument('dataset_name_or_id')
    parser.add_argument('configuration', help='e.g. 3d_fullres')
    parser.add_argument('fold', help="0-4 or 'all'")
    parser.add_argument('-tr', default='nnLandmarkTrainer', help='trainer class from nnlandmark.trainers')
    parser.add_argument('-p', default='nnUNetPlans', help='plans identifier, e.g. nnUNetResEncUNetMPlans')
    parser.add_argument('--c', action='store_true', help='continue from the latest checkpoint')
    parser.add_argument('--val', action='store_true', help='only run the final validation of a finished fold')
    parser.add_argument('-num_gpus', type=positive_int, default=1)
    parser.add_argument('-device', default='cuda' if torch.cuda.is_available() else 'cpu', choices=['cpu', 'cuda'])
    parser.add_argument('--trust_checkpoint', action='store_true',
                        help="read the --c / --val checkpoint in full (unpickled, which can run code): only for a "
                             "fold whose maker you trust")
    args = parser.parse_args(argv)
    if args.device == 'cpu':
        torch.set_num_threads(multiprocessing.cpu_count())
    from nnlandmark.trainers.run import train
    train(args.dataset_name_or_id, args.configuration, args.fold, args.tr, args.p, args.c, args.val,
          args.num_gpus, args.device, args.trust_checkpoint)
