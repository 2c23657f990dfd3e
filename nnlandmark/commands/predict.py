"""nnLandmark_predict -i INPUT_DIR -o OUTPUT_DIR -d ID [-c 3d_fullres] [-f FOLDS...] [-tr] [-p] [-chk] [-device] [--format json,mrk.json,fcsv,csv] [--save_labelmap] [--qc] [--search_around PRIOR --search_radius MM] [--trust_checkpoint]"""
import argparse
from os.path import join

import torch

from nnlandmark.commands._cli import fraction, positive_float, user_errors_as_one_line
from nnlandmark.io.landmark_files import FORMATS
from nnlandmark.io.predictions import parse_formats
from nnlandmark.paths import model_folder


@user_errors_as_one_line(on_interrupt="the cases already written are complete; run again with --continue_prediction "
                                      "to skip them")
def main(argv=None):
    parser = argparse.ArgumentParser(description="Predict landmarks; writes one CASE.json per input case.")
    parser.add_argument('-i', required=True, help='input folder with CASE_0000.nii.gz ... (nnU-Net naming)')
    parser.add_argument('-o', required=True, help='output folder for CASE.json')
    parser.add_argument('-d', required=True, help='dataset name or ID')
    parser.add_argument('-c', default='3d_fullres')
    parser.add_argument('-f', nargs='+', default=None, help="folds to ensemble (default: all trained folds)")
    parser.add_argument('-tr', default='nnLandmarkTrainer')
    parser.add_argument('-p', default='nnUNetPlans')
    parser.add_argument('-chk', default='checkpoint_final.pth')
    parser.add_argument('-step_size', type=fraction, default=0.5,
                        help='sliding-window step as a fraction of the patch, in (0, 1]')
    parser.add_argument('-device', default='cuda' if torch.cuda.is_available() else 'cpu', choices=['cpu', 'cuda'])
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
    parser.add_argument('--search_around', default=None, metavar='PRIOR',
                        help="coarse-to-fine: a folder of CASE.json predictions (e.g. of a 3d_whole model) or a world "
                             "landmarks JSON {case: {name: [x, y, z]}} (LPS mm); each landmark's maximum is read only "
                             "within --search_radius of its prior position")
    parser.add_argument('--search_radius', type=positive_float, default=20.0, metavar='MM',
                        help='radius in mm around each prior position (default 20)')
    parser.add_argument('--trust_checkpoint', action='store_true',
                        help="load checkpoints that hold more than weights and numbers (unpickling them can run any "
                             "code): only for a model whose maker you trust")
    args = parser.parse_args(argv)
    formats = parse_formats(args.format)
    from nnlandmark.inference.predictor import LandmarkPredictor
    from nnlandmark.io.predictions import read_priors
    priors = read_priors(args.search_around) if args.search_around else None
    predictor = LandmarkPredictor.from_model_folder(
        model_folder(args.d, args.tr, args.p, args.c), args.f, args.chk, tile_step_size=args.step_size,
        device=torch.device(args.device), allow_tqdm=not args.disable_tqdm, subvoxel=not args.integer_peaks,
        trust_checkpoint=args.trust_checkpoint)
    written = predictor.predict_folder(args.i, args.o, priors, args.search_radius, formats, args.save_labelmap,
                                       args.qc, args.continue_prediction)
    print(f"{len(written)} case(s) predicted into {args.o}" + (f"; QC pictures in {join(args.o, 'qc')}" if args.qc
                                                                else ""))
