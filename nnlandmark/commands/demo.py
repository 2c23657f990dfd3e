"""nnLandmark_demo [--workdir DIR] [-tr TRAINER]: the whole pipeline on built-in synthetic data, on CPU."""
import argparse
import os

from nnlandmark.commands._cli import user_errors_as_one_line


@user_errors_as_one_line(on_interrupt="run nnLandmark_demo again; it starts over in --workdir")
def main(argv=None):
    parser = argparse.ArgumentParser(description="Run nnlandmark end to end on a built-in synthetic dataset (CPU).")
    parser.add_argument('--workdir', default='nnlandmark_demo', help='scratch folder (recreated on each run)')
    parser.add_argument('-tr', default=None, help='trainer (default: the one the planner chooses, a short CPU schedule)')
    args = parser.parse_args(argv)
    from nnlandmark.demo import run_demo
    from nnlandmark.paths import writable_folder
    workdir = os.path.abspath(args.workdir)
    writable_folder(workdir, "--workdir")
    run_demo(workdir, args.tr)
