"""Cohort prediction throughput (issue: self-configuration): nnLandmark_predict against nnUNetv2_predict of an
equally sized segmentation model, side by side in one run.

Both models are built untrained from the same plans (the CPU plans on CPU, nnU-Net's on a GPU) and one dataset: the
landmark model with N heads (nnLandmarkTrainer), the segmentation model with N + 1 (nnU-Net's own nnUNetTrainer,
random weights: speed does not depend on them). Both predict the same cases with fold 0, no test-time mirroring and
the same -npp / -nps; the ratio is our wall time over nnU-Net's (target <= 0.9 on CPU, <= 1.0 on a GPU). Each
command runs once after a warm-up case, in its own process, nothing else running.

    python benchmarks/prediction_throughput.py [--cases 16] [--npp 3] [--nps 3] [--device cpu|cuda]
                                               [--workdir DIR] [--out FILE]        (CPU: about 8 minutes)
"""
import os
import shutil
import time
from pathlib import Path

from nnlandmark.paths import CPU_PLANS

from _common import (add_device_option, benchmark_parser, default_out, environment, markdown_table, nnunet_env,
                     run_command, scene_dataset, use_nnunet_folders, write_json)

DATASET = 984


def untrained_model(trainer_class, dataset: int, plans: str, device: str) -> Path:
    """A model folder as training leaves it, fold 0 with an untrained network: what prediction reads."""
    import torch
    from batchgenerators.utilities.file_and_folder_operations import load_json, save_json
    from nnlandmark.paths import dataset_name
    pre = Path(os.environ["nnUNet_preprocessed"]) / dataset_name(dataset)
    plans_dict = {**load_json(str(pre / f"{plans}.json")), "continue_training": False}   # nnU-Net's trainer asks
    trainer = trainer_class(plans=plans_dict, configuration="3d_fullres", fold=0,
                            dataset_json=load_json(str(pre / "dataset.json")), device=torch.device(device))
    trainer.initialize()
    os.makedirs(trainer.output_folder, exist_ok=True)
    trainer.save_checkpoint(os.path.join(trainer.output_folder, "checkpoint_final.pth"))
    save_json(trainer.plans_manager.plans, os.path.join(trainer.output_folder_base, "plans.json"), sort_keys=False)
    shutil.copy(pre / "dataset.json", trainer.output_folder_base)
    return Path(trainer.output_folder_base)


def timed_command(env: dict, command: str, *args) -> float:
    start = time.time()
    run_command(env, command, *args)
    return time.time() - start


def main():
    parser = benchmark_parser(__doc__, out=default_out(__file__), workdir="prediction_throughput_benchmark")
    parser.add_argument("--cases", type=int, default=16)
    parser.add_argument("--npp", type=int, default=3)
    parser.add_argument("--nps", type=int, default=3)
    add_device_option(parser, "predict here")
    args = parser.parse_args()
    workdir = Path(args.workdir).resolve()
    env = nnunet_env(workdir)
    use_nnunet_folders(str(workdir))
    from _scenes import write_study_cases
    truth = write_study_cases(workdir / "images", args.cases)
    raw = scene_dataset(env, DATASET, "Throughput", workdir / "images", truth, n_train=args.cases)
    run_command(env, "nnLandmark_plan_and_preprocess", "-d", DATASET, "-device", args.device)
    plans = CPU_PLANS if args.device == "cpu" else "nnUNetPlans"
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnlandmark.trainers.nnLandmarkTrainer import nnLandmarkTrainer
    for trainer_class in (nnLandmarkTrainer, nnUNetTrainer):
        untrained_model(trainer_class, DATASET, plans, args.device)
    inputs = raw / "imagesTr"
    warmup = workdir / "warmup"
    warmup.mkdir(exist_ok=True)
    shutil.copy(next(inputs.glob("*_0000.nii.gz")), warmup)
    common = ["-d", DATASET, "-c", "3d_fullres", "-p", plans, "-f", "0", "--disable_tta", "-npp", args.npp,
              "-nps", args.nps, "-device", args.device]
    commands = {"nnLandmark_predict": ["-tr", "nnLandmarkTrainer", "--disable_tqdm"],
                "nnUNetv2_predict": ["-tr", "nnUNetTrainer", "--disable_progress_bar"]}
    seconds = {}
    for command, extra in commands.items():
        timed_command(env, command, "-i", warmup, "-o", workdir / f"warmup_{command}", *common, *extra)
        seconds[command] = timed_command(env, command, "-i", inputs, "-o", workdir / f"out_{command}", *common,
                                         *extra)
        print(f"{command}: {seconds[command]:.1f} s for {args.cases} cases", flush=True)
    ratio = seconds["nnLandmark_predict"] / seconds["nnUNetv2_predict"]
    print(markdown_table(["command", "wall s", "s / case"],
                         [[c, f"{s:.1f}", f"{s / args.cases:.2f}"] for c, s in seconds.items()]))
    print(f"\nratio nnLandmark_predict / nnUNetv2_predict: {ratio:.2f} (target <= "
          f"{0.9 if args.device == 'cpu' else 1.0})")
    write_json(args.out, {"environment": environment(args.device), "cases": args.cases, "npp": args.npp,
                          "nps": args.nps, "plans": plans, "seconds": seconds, "ratio": ratio})
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
