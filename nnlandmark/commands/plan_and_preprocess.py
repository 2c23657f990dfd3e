"""nnLandmark_plan_and_preprocess -d ID [-c 3d_fullres|2d] [-pl PLANNER] [-device cpu|cuda] [--verify_dataset_integrity] [--cpu_whole_volume]"""
import argparse

import torch

from nnlandmark.commands._cli import positive_int, user_errors_as_one_line


@user_errors_as_one_line(on_interrupt="preprocessing is incomplete; run nnLandmark_plan_and_preprocess again")
def main(argv=None):
    parser = argparse.ArgumentParser(description="nnU-Net planning and preprocessing for a landmark dataset; for a "
                                                 "CPU also the small CPU plans and, where the data needs it, a coarse "
                                                 "whole-volume stage.")
    parser.add_argument('-d', type=int, nargs='+', required=True, help='dataset ID(s)')
    parser.add_argument('-c', nargs='+', help='configurations to preprocess (default: 3d_fullres; 2d for 2D images)')
    parser.add_argument('-pl', default='ExperimentPlanner',
                        help='ExperimentPlanner (default), nnUNetPlannerResEncM, nnUNetPlannerResEncL, ...')
    parser.add_argument('-np', type=positive_int, default=2, help='processes for fingerprint and preprocessing')
    parser.add_argument('-device', default='cuda' if torch.cuda.is_available() else 'cpu', choices=['cpu', 'cuda'],
                        help="the hardware to train on (default: cuda where available): cpu also writes "
                             "nnLandmarkCPUPlans (small network, patch 32^3) with the stages the data needs")
    parser.add_argument('--verify_dataset_integrity', action='store_true')
    parser.add_argument('--cpu_plans', action='store_true', help='the same as -device cpu')
    parser.add_argument('--cpu_whole_volume', action='store_true',
                        help="with CPU plans: add the coarse whole-volume stage 3d_whole even where the data would "
                             "not need it")
    args = parser.parse_args(argv)
    from nnlandmark.planning import plan_and_preprocess, plan_cpu_stages
    cpu = args.device == 'cpu' or args.cpu_plans
    if args.cpu_whole_volume and not cpu:
        parser.error("--cpu_whole_volume needs the CPU plans (-device cpu)")
    if (args.cpu_plans or args.cpu_whole_volume) and args.c and not {'3d_fullres', '2d'} & set(args.c):
        parser.error("the CPU plans train on the preprocessed data of 3d_fullres (2d for 2D images): keep it in -c")
    for dataset_id in args.d:
        plans = plan_and_preprocess(dataset_id, args.c, args.pl, args.verify_dataset_integrity, args.np)
        print(f"Dataset {dataset_id}: plans '{plans}' written")
        if cpu and args.c and not {'3d_fullres', '2d'} & set(args.c):
            print(f"Dataset {dataset_id}: no CPU plans, which train on the data of 3d_fullres (2d for 2D images), "
                  f"not in -c")
        elif cpu:
            stages = plan_cpu_stages(dataset_id, plans, args.cpu_whole_volume, args.np)
            print(f"Dataset {dataset_id}: train " + " then ".join(f"nnLandmark_train {dataset_id} {c} FOLD"
                                                                  for c in stages))
