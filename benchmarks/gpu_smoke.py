"""GPU smoke check, part 1 (benchmarks/gpu_smoke.sh): plan the demo's spheres for CUDA, train fold 0 of the paper's
trainer briefly (nnLandmarkTrainer_5epochs: 5 x 250 iterations, nnU-Net's autocast), predict the held-out cases
and evaluate them; prints and writes training seconds, seconds per iteration, prediction seconds and the MRE.

    python benchmarks/gpu_smoke.py [--workdir DIR] [--out FILE]        (about 3 minutes on one recent GPU)
"""
import json
import time
from pathlib import Path

from _common import (benchmark_parser, default_out, environment, markdown_table, nnunet_env, run_command, spheres,
                     training_env, write_json)

DATASET, TRAINER = 983, "nnLandmarkTrainer_5epochs"


def main():
    args = benchmark_parser(__doc__, out=default_out(__file__), workdir="gpu_smoke_benchmark").parse_args()
    env = nnunet_env(Path(args.workdir).resolve())
    raw = spheres(env, DATASET, "GpuSmoke", n_train=20, n_test=5)
    run_command(env, "nnLandmark_plan_and_preprocess", "-d", DATASET, "-device", "cuda")
    start = time.time()
    run_command(training_env(env), "nnLandmark_train", DATASET, "3d_fullres", 0, "-tr", TRAINER, "-device", "cuda")
    train_s = time.time() - start
    out = Path(args.workdir).resolve() / "predictions"
    start = time.time()
    run_command(env, "nnLandmark_predict", "-i", raw / "imagesTs", "-o", out, "-d", DATASET, "-tr", TRAINER, "-f", 0,
                "-device", "cuda", "--disable_tqdm")
    predict_s = time.time() - start
    run_command(env, "nnLandmark_evaluate", "-pred", out, "-gt", raw / "all_landmarks_world.json")
    summary = json.loads((out / "evaluation" / "summary.json").read_text())
    result = {"environment": environment("cuda"), "training_s": train_s, "s_per_iteration": train_s / (5 * 250),
              "prediction_s": predict_s, "n_test_cases": summary["n_cases"], "mre_mm": summary["mre_mm"]}
    print(markdown_table(["training s", "s / iteration (incl. validation)", "prediction s (5 cases)", "MRE mm"],
                         [[f"{train_s:.0f}", f"{result['s_per_iteration']:.3f}", f"{predict_s:.1f}",
                           f"{summary['mre_mm']:.2f}"]]))
    write_json(args.out, result)


if __name__ == "__main__":
    main()
