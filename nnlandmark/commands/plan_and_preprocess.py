"""nnLandmark_plan_and_preprocess -d ID [-c 3d_fullres] [-pl PLANNER] [--verify_dataset_integrity] [--cpu_plans]"""
import argparse

from nnlandmark.commands._cli import user_errors_as_one_line


@user_errors_as_one_line
def main(argv=None):
    parser = argparse.ArgumentParser(description="nnU-Net planning and preprocessing for a landmark dataset.")
    parser.add_argument('-d', type=int, nargs='+', required=True, help='dataset ID(s)')
    parser.add_argument('-c', nargs='+', default=['3d_fullres'], help='configurations to preprocess')
    parser.add_argument('-pl', default='ExperimentPlanner',
                        help='ExperimentPlanner (default), nnUNetPlannerResEncM, nnUNetPlannerResEncL, ...')
    parser.add_argument('-np', type=int, default=2, help='processes for fingerprint and preprocessing')
    parser.add_argument('--verify_dataset_integrity', action='store_true')
    parser.add_argument('--cpu_plans', action='store_true',
                        help='also write nnLandmarkCPUPlans (small network, patch 32^3) for CPU training')
    args = parser.parse_args(argv)
    from nnlandmark.planning import derive_cpu_plans, plan_and_preprocess
    for dataset_id in args.d:
        plans = plan_and_preprocess(dataset_id, args.c, args.pl, args.verify_dataset_integrity, args.np)
        print(f"Dataset {dataset_id}: plans '{plans}' written and preprocessed")
        if args.cpu_plans:
            print(f"Dataset {dataset_id}: CPU plans '{derive_cpu_plans(dataset_id, plans)}' written")
