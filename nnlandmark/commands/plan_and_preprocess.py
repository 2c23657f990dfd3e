"""nnLandmark_plan_and_preprocess -d ID [-c 3d_fullres] [-pl PLANNER] [--verify_dataset_integrity] [--cpu_plans [--cpu_whole_volume]]"""
import argparse

from nnlandmark.commands._cli import positive_int, user_errors_as_one_line


@user_errors_as_one_line(on_interrupt="preprocessing is incomplete; run nnLandmark_plan_and_preprocess again")
def main(argv=None):
    parser = argparse.ArgumentParser(description="nnU-Net planning and preprocessing for a landmark dataset.")
    parser.add_argument('-d', type=int, nargs='+', required=True, help='dataset ID(s)')
    parser.add_argument('-c', nargs='+', default=['3d_fullres'], help='configurations to preprocess')
    parser.add_argument('-pl', default='ExperimentPlanner',
                        help='ExperimentPlanner (default), nnUNetPlannerResEncM, nnUNetPlannerResEncL, ...')
    parser.add_argument('-np', type=positive_int, default=2, help='processes for fingerprint and preprocessing')
    parser.add_argument('--verify_dataset_integrity', action='store_true')
    parser.add_argument('--cpu_plans', action='store_true',
                        help='also write nnLandmarkCPUPlans (small network, patch 32^3) for CPU training')
    parser.add_argument('--cpu_whole_volume', action='store_true',
                        help="with --cpu_plans: add configuration 3d_whole to nnLandmarkCPUPlans (coarser spacing, "
                             "the whole volume as patch), for many landmarks on a CPU budget")
    args = parser.parse_args(argv)
    from nnlandmark.planning import add_whole_volume_configuration, derive_cpu_plans, plan_and_preprocess
    if args.cpu_whole_volume and not args.cpu_plans:
        parser.error("--cpu_whole_volume needs --cpu_plans")
    if args.cpu_plans and '3d_fullres' not in args.c:
        parser.error("--cpu_plans needs -c 3d_fullres: the CPU plans train on its preprocessed data")
    for dataset_id in args.d:
        plans = plan_and_preprocess(dataset_id, args.c, args.pl, args.verify_dataset_integrity, args.np)
        print(f"Dataset {dataset_id}: plans '{plans}' written; {', '.join(dict.fromkeys(args.c))} preprocessed")
        if args.cpu_plans:
            print(f"Dataset {dataset_id}: CPU plans '{derive_cpu_plans(dataset_id, plans)}' written")
        if args.cpu_whole_volume:
            print(f"Dataset {dataset_id}: configuration '{add_whole_volume_configuration(dataset_id, num_processes=args.np)}' "
                  f"added to the CPU plans and preprocessed")
