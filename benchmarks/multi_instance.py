"""Multi-instance classes on CPU (issue: beyond one point per channel): 0-6 bright "contact" spheres per case beside
two single landmarks, converted from CSV files with repeated names (``nnLandmark_convert --multi-instance contact``),
trained on the default path (no trainer name), calibrated on fold 0's validation (threshold and NMS distance of
maximum F1, written by the final validation), judged on the held-out test cases: F1 at 2 mm, the matched pairs' MRE
and the count error.

Reference, same generator and schedule: every case holds exactly one contact sphere, annotated as a single landmark.
Targets: F1 >= 0.95 at 2 mm; the matched contacts' MRE within 1.2x the single contact landmark's; the two single
landmarks no worse than in the reference.

    python benchmarks/multi_instance.py [--workdir DIR] [--out FILE] [--trainer NAME]   (about 15-40 CPU minutes)

``--trainer``: both arms trained with that trainer instead of the planner's choice (e.g.
nnLandmarkTrainer_CPU_SpatialSoftmax, whose spatial softmax runs per instance for the class).
"""
import json
from pathlib import Path

from nnlandmark.dataset_conversion.synthetic import write_instance_sources

from _common import benchmark_parser, default_out, markdown_table, nnunet_env, run_command, training_env, write_json

SINGLES = ("medium_sphere", "large_sphere")
MATCH_MM = 2.0


def train_and_test(env: dict, workdir: Path, dataset: int, name: str, contacts, seed: int, trainer=None) -> dict:
    """Convert, plan, train fold 0 and predict the test cases of one arm; its test summary."""
    images, landmarks = write_instance_sources(str(workdir / f"sources_{name}"), n_cases=40, max_contacts=contacts,
                                               seed=seed)
    multi = ["--multi-instance", "contact"] if contacts != "one" else []
    run_command(env, "nnLandmark_convert", "-i", images, "-l", landmarks, "-d", dataset, "-n", name,
                "--test-fraction", 0.25, "--overwrite", *multi)
    run_command(env, "nnLandmark_plan_and_preprocess", "-d", dataset, "--cpu_plans")
    chosen = ["-tr", trainer] if trainer else []
    run_command(training_env(env), "nnLandmark_train", dataset, "3d_fullres", 0, "-device", "cpu", *chosen)
    raw = next(Path(env["nnUNet_raw"]).glob(f"Dataset{dataset}_*"))
    predictions = workdir / f"predictions_{name}"
    run_command(env, "nnLandmark_predict", "-i", raw / "imagesTs", "-o", predictions, "-d", dataset, "-device", "cpu",
                "--disable_tqdm", *chosen)
    run_command(env, "nnLandmark_evaluate", "-pred", predictions, "-gt", raw, "--match_mm", MATCH_MM)
    return json.loads((predictions / "evaluation" / "summary.json").read_text())


def main():
    parser = benchmark_parser(__doc__, out=default_out(__file__), workdir="multi_instance_benchmark")
    parser.add_argument("--trainer", default=None, help="train both arms with this trainer (default: the planner's)")
    args = parser.parse_args()
    workdir = Path(args.workdir).resolve()
    env = nnunet_env(workdir)
    multi = train_and_test(env, workdir, 982, "Contacts", 6, seed=11, trainer=args.trainer)
    single = train_and_test(env, workdir, 983, "OneContact", "one", seed=12, trainer=args.trainer)
    contact = multi["instances"]["per_class"]["contact"]
    rows = [["contacts: F1 / precision / recall at 2 mm", f"{contact['f1']:.3f} / {contact['precision']:.3f} / "
                                                          f"{contact['recall']:.3f}", "-"],
            ["contacts: TP / FP / FN", f"{contact['tp']} / {contact['fp']} / {contact['fn']}", "-"],
            ["contacts: mean |count error| per case", f"{contact['mean_abs_count_error']:.2f}", "-"],
            ["contact MRE (matched / single landmark), mm", f"{contact['matched_mre_mm']:.2f}",
             f"{single['per_landmark']['contact']['mre_mm']:.2f}"],
            *[[f"{n} MRE, mm", f"{multi['per_landmark'][n]['mre_mm']:.2f}",
               f"{single['per_landmark'][n]['mre_mm']:.2f}"] for n in SINGLES]]
    print(markdown_table(["", "0-6 contacts (multi-instance)", "one contact (single landmark)"], rows))
    write_json(args.out, {"match_mm": MATCH_MM, "trainer": args.trainer, "multi_instance": {"instances": multi["instances"],
                                                                   "per_landmark": multi["per_landmark"]},
                          "single_contact": {"per_landmark": single["per_landmark"]}})


if __name__ == "__main__":
    main()
