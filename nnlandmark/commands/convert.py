"""nnLandmark_convert: images + landmark files -> an nnU-Net raw dataset with 3x3x3 label cubes.

    nnLandmark_convert -i IMAGES_DIR -l LANDMARKS_DIR -d ID -n NAME [--coordinate-system lps|ras|voxel] [--spacing SX SY]
                       [--test-cases FILE | --test-fraction F] [--folds K | --splits FILE] [--seed S] [--overwrite]
    nnLandmark_convert --manifest FILE -d ID -n NAME [...]
    nnLandmark_convert {afids,mml,pddca,feta,lfc} -i DOWNLOAD_DIR [-d ID] [-n NAME] [--overwrite]
"""
import argparse
import sys
import warnings

from nnlandmark.commands._cli import positive_float, user_errors_as_one_line
from nnlandmark.dataset_conversion.benchmarks import BENCHMARKS
from nnlandmark.paths import require_path


def _generic_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nnLandmark_convert",
        description="Pair images with landmark files (.mrk.json, .fcsv, .csv, .json) by case name and write an "
                    "nnU-Net raw dataset into $nnUNet_raw. Benchmarks: nnLandmark_convert {%s} -i DIR." %
                    ",".join(BENCHMARKS))
    parser.add_argument("-i", dest="images", help="folder of images (CASE.nii.gz or CASE_0000.nii.gz, ...)")
    parser.add_argument("-l", dest="landmarks", help="folder of landmark files named CASE.<ending>")
    parser.add_argument("--manifest", help="CSV (case,image,landmarks) or JSON list pairing images and landmarks, "
                                           "instead of -i/-l")
    parser.add_argument("-d", type=int, required=True, help="dataset ID (1-999)")
    parser.add_argument("-n", required=True, help="dataset name (DatasetXXX_NAME)")
    parser.add_argument("--coordinate-system", choices=["lps", "ras", "voxel"], type=str.lower,
                        help="system of CSV/JSON files that do not declare one (Slicer files declare their own)")
    split = parser.add_mutually_exclusive_group()
    split.add_argument("--test-cases", help="file listing held-out test cases (one per line, or a JSON list)")
    split.add_argument("--test-fraction", type=float, help="hold out this fraction of cases at random (--seed)")
    folds = parser.add_mutually_exclusive_group()
    folds.add_argument("--folds", type=int, help="write a K-fold splits_final.json of the training cases (--seed)")
    folds.add_argument("--splits", help="nnU-Net splits_final.json to ship with the dataset")
    parser.add_argument("--may-be-absent", type=lambda text: [n.strip() for n in text.split(",") if n.strip()],
                        help="comma list of landmarks (or 'all') that can truly be absent in a case: a missing one "
                             "is then trained as 'not there'; otherwise a missing landmark counts as unannotated")
    parser.add_argument("--multi-instance", type=lambda text: [n.strip() for n in text.split(",") if n.strip()],
                        help="comma list of classes with any number of points per case (electrode contacts, teeth): "
                             "their points share a name, each is painted as an instance")
    parser.add_argument("--spacing", nargs=2, type=positive_float, metavar=("SX", "SY"),
                        help="pixel spacing in mm of 2D images (PNG and JPEG carry none and are read at 1 mm)")
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing dataset of that ID and name")
    return parser


def _benchmark_parser(benchmark: str, module) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"nnLandmark_convert {benchmark}",
                                     description=(module.__doc__ or "").strip().splitlines()[0])
    parser.add_argument("-i", required=True, help="the downloaded dataset folder")
    parser.add_argument("-d", type=int, default=module.DEFAULT_ID)
    parser.add_argument("-n", default=module.DEFAULT_NAME)
    parser.add_argument("--overwrite", action="store_true")
    return parser


def _show_warnings(messages):
    from nnlandmark.dataset_conversion.dataset_writer import ConversionWarning
    from nnlandmark.io.landmark_files import LandmarkFileWarning
    for w in messages:
        if issubclass(w.category, (ConversionWarning, LandmarkFileWarning)):
            print(f"WARNING: {w.message}", file=sys.stderr)


@user_errors_as_one_line
def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    raw = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # every conversion warning is said, once per run
        if argv and argv[0] in BENCHMARKS:
            from nnlandmark.dataset_conversion.benchmarks import benchmark_module
            module = benchmark_module(argv[0])
            args = _benchmark_parser(argv[0], module).parse_args(argv[1:])
            raw = require_path("nnUNet_raw")
            try:
                folder = module.convert(args.i, raw, args.d, args.n, overwrite=args.overwrite)
            finally:
                _show_warnings(caught)
        else:
            args = _generic_parser().parse_args(argv)
            raw = require_path("nnUNet_raw")
            from nnlandmark.dataset_conversion.convert import convert
            try:
                folder = convert(raw, args.d, args.n, args.images, args.landmarks, args.manifest,
                                 args.coordinate_system, args.test_cases, args.test_fraction, args.folds, args.splits,
                                 args.seed, args.overwrite, args.may_be_absent, args.multi_instance, args.spacing)
            finally:
                _show_warnings(caught)
    print(f"wrote {folder}; next: nnLandmark_plan_and_preprocess -d {args.d} --verify_dataset_integrity")
