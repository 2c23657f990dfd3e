"""nnLandmark_ensemble -i FOLDER FOLDER... -o OUTPUT [--format json,...]: the coordinate average of several models'
predictions (what nnLandmark_find_best_configuration may choose), and the instances of multi-instance classes that
at least half of them found."""
import argparse

from nnlandmark.commands._cli import positive_float, user_errors_as_one_line
from nnlandmark.io.landmark_files import FORMATS


@user_errors_as_one_line
def main(argv=None):
    parser = argparse.ArgumentParser(description="Average the landmarks of several prediction folders, case by case.")
    parser.add_argument('-i', nargs='+', required=True, help='prediction folders (CASE.json of nnLandmark_predict)')
    parser.add_argument('-o', required=True, help='output folder')
    parser.add_argument('--format', default='json', help=f"comma list of {','.join(FORMATS)}")
    parser.add_argument('--match_mm', type=positive_float, default=4.0,
                        help='multi-instance classes: instances of the models within this distance are one (mm)')
    args = parser.parse_args(argv)
    from nnlandmark.io.predictions import parse_formats
    from nnlandmark.selection import ensemble_folders
    written = ensemble_folders(args.i, args.o, parse_formats(args.format), args.match_mm)
    print(f"{len(written)} case(s) averaged over {len(args.i)} folders into {args.o}")
