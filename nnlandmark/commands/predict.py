"""nnLandmark_predict -i INPUT_DIR -o OUTPUT_DIR -d ID [-c 3d_fullres|2d] [--spacing SX SY] [-f FOLDS...] [-tr] [-p] [-chk] [-device] [--format json,mrk.json,fcsv,csv] [--save_labelmap] [--qc] [-prev_stage_predictions PRIOR] [--search_radius MM] [--review MM] [--disable_tta] [-num_parts N -part_id K] [-npp 3] [-nps 3] [--trust_checkpoint]"""
import argparse
from os.path import join

import torch

from nnlandmark.commands._cli import (fraction, non_negative_int, positive_float, positive_int,
                                     user_errors_as_one_line)
from nnlandmark.errors import LandmarkError
from nnlandmark.io.landmark_files import FORMATS
from nnlandmark.io.predictions import parse_formats
from nnlandmark.network import DEVICES, default_device


@user_errors_as_one_line(on_interrupt="the cases already written are complete; run again with --continue_prediction "
                                      "to skip them")
def main(argv=None):
    parser = argparse.ArgumentParser(description="Predict landmarks; writes one CASE.json per input case.")
    parser.add_argument('-i', nargs='+', required=True,
                        help='input folder with CASE_0000.nii.gz ... (nnU-Net naming), or image files (one case each)')
    parser.add_argument('-o', required=True, help='output folder for CASE.json')
    parser.add_argument('-d', required=True, help='dataset name or ID')
    parser.add_argument('-c', default=None, help="configuration (default: 3d_fullres, or 2d for a model of 2D images)")
    parser.add_argument('-f', nargs='+', default=None, help="folds to ensemble (default: all trained folds)")
    parser.add_argument('-tr', default=None, help="trainer (default: the trained model of the planner's choice)")
    parser.add_argument('-p', default=None, help="plans (default: those of the trained model; the CPU plans on a "
                                                 "CPU where both were trained)")
    parser.add_argument('-chk', default='checkpoint_final.pth')
    parser.add_argument('-step_size', type=fraction, default=0.5,
                        help='sliding-window step as a fraction of the patch, in (0, 1]')
    parser.add_argument('-device', default=default_device(), choices=DEVICES)
    parser.add_argument('--disable_tta', action='store_true', help='no test-time mirroring (faster)')
    parser.add_argument('-num_parts', type=positive_int, default=1,
                        help='split the cases into this many parts (several machines or GPUs; nnU-Net\'s option)')
    parser.add_argument('-part_id', type=int, default=0, help='which part this run predicts: 0 .. num_parts - 1')
    parser.add_argument('-npp', type=non_negative_int, default=3,
                        help='background workers (threads) that preprocess the next cases while the network runs '
                             '(nnU-Net\'s option; 0: one case after the other)')
    parser.add_argument('-nps', type=positive_int, default=3,
                        help='background threads that write the output files (nnU-Net\'s option)')
    parser.add_argument('--integer_peaks', action='store_true',
                        help="the paper's integer argmax instead of the sub-voxel refined maximum")
    parser.add_argument('--continue_prediction', action='store_true', help='skip cases whose JSON already exists')
    parser.add_argument('--disable_tqdm', action='store_true')
    parser.add_argument('--format', default='json',
                        help=f"comma list of {','.join(FORMATS)}: besides CASE.json also write CASE.mrk.json (Slicer), "
                             "CASE.fcsv and CASE.csv (name,x,y,z world LPS mm + i,j,k voxel)")
    parser.add_argument('--save_labelmap', action='store_true',
                        help='also write OUTPUT_DIR/CASE<file_ending>: a 3x3x3 cube per predicted landmark on the input '
                             "image's grid (open it over the image in any viewer)")
    parser.add_argument('--qc', action='store_true',
                        help='also write OUTPUT_DIR/qc/CASE.png: three slices through each predicted landmark')
    parser.add_argument('-prev_stage_predictions', '--search_around', dest='prior', default=None, metavar='PRIOR',
                        help="a folder of CASE.json predictions (e.g. of a 3d_whole model) or a world landmarks JSON "
                             "{case: {name: [x, y, z]}} (LPS mm); each landmark's maximum is read only within "
                             "--search_radius of its prior position. A cascade's fine stage runs its coarse stage "
                             "itself when this is left out")
    parser.add_argument('--search_radius', type=positive_float, default=None, metavar='MM',
                        help="radius in mm around each prior position (default: from the coarse stage's "
                             "cross-validation errors, else 20)")
    parser.add_argument('--review', type=positive_float, default=None, metavar='MM',
                        help="write OUTPUT_DIR/review.csv: the landmarks whose calibrated expected error exceeds MM, "
                             "worst first; the Slicer files mark them (description, unselected) and --qc draws "
                             "each landmark's radius. Needs a calibrated model (nnLandmark_calibrate)")
    parser.add_argument('--spacing', nargs=2, type=positive_float, default=None, metavar=('SX', 'SY'),
                        help="pixel spacing in mm of 2D input images (needed for PNG, JPEG and BMP, which carry none)")
    parser.add_argument('--trust_checkpoint', action='store_true',
                        help="load checkpoints that hold more than weights and numbers (unpickling them can run any "
                             "code): only for a model whose maker you trust")
    args = parser.parse_args(argv)
    formats = parse_formats(args.format)
    from nnlandmark.inference.cascade import predict_model
    from nnlandmark.io.predictions import read_priors
    from nnlandmark.stages import default_configuration, find_model_folder
    if not 0 <= args.part_id < args.num_parts:   # before any model is loaded
        raise LandmarkError(f"-part_id must lie in 0..{args.num_parts - 1} for -num_parts {args.num_parts}, got "
                            f"{args.part_id}")
    model = find_model_folder(args.d, args.c or default_configuration(args.d), args.tr, args.p, args.device)
    inputs = args.i[0] if len(args.i) == 1 else args.i
    written = predict_model(model, inputs, args.o, args.f, args.chk, args.trust_checkpoint,
                            read_priors(args.prior) if args.prior else None, args.search_radius,
                            dict(tile_step_size=args.step_size, use_mirroring=not args.disable_tta,
                                 device=torch.device(args.device), allow_tqdm=not args.disable_tqdm,
                                 subvoxel=not args.integer_peaks),
                            formats=formats, save_labelmap=args.save_labelmap, qc=args.qc,
                            continue_prediction=args.continue_prediction, num_parts=args.num_parts,
                            part_id=args.part_id, num_processes_preprocessing=args.npp,
                            num_processes_export=args.nps, review_mm=args.review, pixel_spacing=args.spacing)
    print(f"{len(written)} case(s) predicted into {args.o} with {model}" +
          (f"; QC pictures in {join(args.o, 'qc')}" if args.qc else ""))
