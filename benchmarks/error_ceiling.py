"""How far can an error estimate rank the errors of a trained cascade (issue: calibrated uncertainty)? Run after
``default_path.py`` (same ``--data``, ``--workdir``): it trains the folds of ``--folds`` that are missing (both
stages, the default path's trainers), recalibrates on every validated fold, predicts the test cases with each fine
fold alone (within the coarse stage's landmarks of all its folds) and judges, side by side:

- per fold, Spearman(expected_error_mm, actual) and the radius's coverage, against the hindsight oracle of any
  per-landmark estimate (each landmark's own mean test error) and the plain per-landmark mean of the CV errors;
- what could rank errors *within* a landmark (mean over landmarks of the Spearman across test cases): the
  calibrated estimate, the disagreement of the folds (RMS distance of their predictions from their mean; an ensemble
  gives it for free but cross-validation cannot fit it, each CV case being predicted by one fold), and the shape
  consistency (distance of a prediction from the training cases' mean shape mapped affinely onto the case's other
  predicted landmarks).

A Spearman target above the oracle needs a within-landmark signal; this script says whether there is one.

    python benchmarks/error_ceiling.py [--data study|mni_t1|mni_t2w] [--folds 0 1 2] [--workdir DIR] [--out FILE]
    (about 25 min per missing fold and 8 min per fold's prediction on 2 cores, the T1)
"""
import json
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from nnlandmark.io.predictions import read_landmark_entries
from nnlandmark.paths import CPU_PLANS
from nnlandmark.stages import TRAINER_KEY
from nnlandmark.uncertainty import calibration_rows

from _common import benchmark_parser, default_out, environment, markdown_table, run_command, training_env, \
    use_nnunet_folders, write_json
from default_path import DATASETS, trained_default_path

STAGES = ("3d_whole", "3d_fullres")


def field(entries: dict, cases, names, key: str) -> np.ndarray:
    """(case, landmark[, 3]) array of one field of a prediction folder's entries (``read_landmark_entries``)."""
    return np.array([[entries[c][n][key] for n in names] for c in cases], float)


def hindsight_oracle(error: np.ndarray) -> np.ndarray:
    """Each landmark's own mean error, for every case (case, landmark): the best any per-landmark estimate ranks."""
    return np.broadcast_to(error.mean(0), error.shape)


def within_landmark(score: np.ndarray, error: np.ndarray) -> float:
    """Mean over landmarks of Spearman(score, error) across cases (case, landmark arrays)."""
    return float(np.nanmean([spearmanr(score[:, j], error[:, j]).statistic for j in range(error.shape[1])]))


def pooled(score: np.ndarray, error: np.ndarray) -> float:
    return float(spearmanr(score.ravel(), error.ravel()).statistic)


def shape_deviation(mean_shape: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """(landmark,) distance of each predicted point from where the mean shape, mapped affinely onto the other
    predicted points by least squares, puts it."""
    n = len(mean_shape)
    homogeneous = np.c_[mean_shape, np.ones(n)]
    deviation = np.empty(n)
    for j in range(n):
        others = np.arange(n) != j
        affine = np.linalg.lstsq(homogeneous[others], predicted[others], rcond=None)[0]
        deviation[j] = np.linalg.norm(homogeneous[j] @ affine - predicted[j])
    return deviation


def main():
    parser = benchmark_parser(__doc__, workdir="default_path_benchmark")
    parser.add_argument("--data", choices=list(DATASETS), default="study")
    parser.add_argument("--folds", type=int, nargs="+", default=[0, 1, 2], help="folds to train and compare")
    args = parser.parse_args()
    args.out = args.out or default_out("error_ceiling" + ("" if args.data == "study" else f"_{args.data}"))
    workdir = Path(args.workdir).resolve()
    env, dataset, raw, plans = trained_default_path(workdir, args.data)
    truth = json.loads((raw / "all_landmarks_world.json").read_text())
    truth.pop("coordinate_system", None)
    if any(point is None for case in truth.values() for point in case.values()):
        raise SystemExit("error_ceiling.py compares every landmark of every case: this dataset has absent ones")
    models = {c: Path(env["nnUNet_results"]) / raw.name / f"{plans['configurations'][c][TRAINER_KEY]}__{CPU_PLANS}__{c}"
              for c in STAGES}
    for configuration in STAGES:   # the coarse folds first: a fine fold validates within their landmarks
        for fold in args.folds:
            if not (models[configuration] / f"fold_{fold}" / "checkpoint_final.pth").exists():
                print(f"training {configuration} fold {fold}", flush=True)
                run_command(training_env(env), "nnLandmark_train", dataset, configuration, fold, "-device", "cpu")
    print(run_command(env, "nnLandmark_calibrate", "-d", dataset).strip(), flush=True)
    calibration = json.loads((models["3d_fullres"] / "landmark_uncertainty.json").read_text())
    out = workdir / f"error_ceiling_{args.data}"
    run_command(env, "nnLandmark_predict", "-i", raw / "imagesTs", "-o", out / "coarse", "-d", dataset,
                "-c", "3d_whole", "-device", "cpu", "--disable_tqdm", "--continue_prediction")
    for fold in args.folds:
        print(f"predicting the test cases with fine fold {fold}", flush=True)
        run_command(env, "nnLandmark_predict", "-i", raw / "imagesTs", "-o", out / f"fold_{fold}", "-d", dataset,
                    "-f", fold, "-prev_stage_predictions", out / "coarse", "-device", "cpu", "--disable_tqdm",
                    "--continue_prediction")

    entries = [read_landmark_entries(out / f"fold_{f}") for f in args.folds]
    cases = sorted(entries[0])
    names = sorted(truth[cases[0]])
    true = np.array([[truth[c][n] for n in names] for c in cases], float)
    world, expected, radius = (np.stack([field(e, cases, names, key) for e in entries])
                               for key in ("world", "expected_error_mm", "radius_mm"))
    error = np.linalg.norm(world - true, axis=-1)                              # fold, case, landmark
    training = [c for c in truth if c not in cases]
    mean_shape = np.mean([[truth[c][n] for n in names] for c in training], axis=0)
    ensemble = world.mean(0)
    spread = np.sqrt((np.linalg.norm(world - ensemble, axis=-1) ** 2).mean(0))
    use_nnunet_folders(workdir)
    _, cv_errors, cv_landmarks, _ = calibration_rows(str(models["3d_fullres"]), dataset)
    cv_landmarks = np.asarray(cv_landmarks)
    cv_mean = np.broadcast_to([cv_errors[cv_landmarks == n].mean() for n in names], error.shape[1:])
    rows, results = [], []
    for i, fold in enumerate(args.folds):
        deviation = np.array([shape_deviation(mean_shape, world[i, k]) for k in range(len(cases))])
        result = {"fold": fold, "mre_mm": float(error[i].mean()), "coverage": float(np.mean(error[i] <= radius[i])),
                  "spearman": pooled(expected[i], error[i]), "oracle": pooled(hindsight_oracle(error[i]), error[i]),
                  "cv_landmark_mean": pooled(cv_mean, error[i]),
                  "within_expected": within_landmark(expected[i], error[i]),
                  "within_fold_spread": within_landmark(spread, error[i]),
                  "within_shape_deviation": within_landmark(deviation, error[i])}
        results.append(result)
        rows.append([fold, f"{result['mre_mm']:.2f}", f"{100 * result['coverage']:.1f}"] +
                    [f"{result[k]:.3f}" for k in ("spearman", "oracle", "cv_landmark_mean", "within_expected",
                                                  "within_fold_spread", "within_shape_deviation")])
    ensemble_error = np.linalg.norm(ensemble - true, axis=-1)
    print(markdown_table(["fold", "test MRE mm", "coverage %", "Spearman", "oracle", "CV landmark mean",
                          "within: expected", "within: fold spread", "within: shape"], rows))
    print(f"\n{calibration['n_cases']} validated CV cases; the folds' mean position: MRE {ensemble_error.mean():.2f} "
          f"mm, fold spread within a landmark {within_landmark(spread, ensemble_error):.3f}, mean expected error "
          f"{pooled(expected.mean(0), ensemble_error):.3f} (oracle "
          f"{pooled(hindsight_oracle(ensemble_error), ensemble_error):.3f})")
    write_json(args.out, {"environment": environment("cpu"), "data": args.data, "folds": args.folds,
                          "calibration_cases": calibration["n_cases"], "per_fold": results,
                          "ensemble_mre_mm": float(ensemble_error.mean()),
                          "ensemble_within_fold_spread": within_landmark(spread, ensemble_error)})
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
