"""Calibrated error estimates: the model on fabricated cross-validation errors with a known relation, its file, the
review list and Slicer flags, and the evaluation of coverage, Spearman and AUROC."""
import json

import numpy as np
import pytest

from nnlandmark.commands import evaluate
from nnlandmark.errors import LandmarkError
from nnlandmark.evaluation.reliability import auroc, reliability_table
from nnlandmark.io.predictions import read_error_estimates, write_review_list
from nnlandmark.uncertainty import (ErrorModel, conformal_quantile, feature_row, fit_error_model, landmark_offsets,
                                    read_error_model, unsteady_radius)

def fabricated(n_cases, seed, landmarks=("a", "b", "c", "d")):
    """Entries and errors where the error's scale falls with the likelihood and grows with the peak's spread, and
    landmark 'd' is twice as hard as its features say: what a calibration must learn."""
    rng = np.random.default_rng(seed)
    rows = []
    for case in range(n_cases):
        for name in landmarks:
            likelihood, spread, second = rng.uniform(0.2, 1.0), rng.uniform(2, 12), rng.uniform(0, 0.8)
            scale = np.exp(1.2 - 2.0 * likelihood) * (spread / 5) ** 0.5 * (2.0 if name == "d" else 1.0)
            error = float(np.linalg.norm(rng.normal(0, scale, 3)))
            entry = {"likelihood": likelihood, "peak": {"half_max_radius_mm": spread, "second_peak": second,
                                                         "prior_distance_mm": None}}
            rows.append((f"case{case:03d}", name, entry, error))
    return rows


def fit(rows, coverage=0.9):
    x = np.stack([feature_row(entry) for _, _, entry, _ in rows])
    return fit_error_model(x, [e for *_, e in rows], [n for _, n, _, _ in rows], [c for c, *_ in rows], coverage)


@pytest.mark.parametrize("coverage", [0.8, 0.9])
def test_radius_covers_the_stated_share_of_new_landmarks_and_is_narrower_than_one_global_radius(coverage):
    calibration = fit(fabricated(150, seed=1), coverage)
    held_out = fabricated(300, seed=2)
    estimates = ErrorModel(calibration).estimate   # per case: {name: entry}
    expected, radius, actual = [], [], []
    for case in sorted({c for c, *_ in held_out}):
        rows = [r for r in held_out if r[0] == case]
        for (_, name, _, error), (e, r) in zip(rows, estimates({n: entry for _, n, entry, _ in rows}).values()):
            expected.append(e), radius.append(r), actual.append(error)
    expected, radius, actual = map(np.array, (expected, radius, actual))
    assert np.mean(actual <= radius) == pytest.approx(coverage, abs=0.03)      # 1200 held-out landmarks
    global_radius = np.quantile([e for *_, e in fabricated(150, seed=1)], coverage)
    assert np.median(radius) < 0.85 * global_radius          # adaptive: small where the features say small
    assert np.mean(expected) == pytest.approx(np.mean(actual), rel=0.12)       # a mean in mm, not a log-scale one
    hard = np.array([n == "d" for _, n, _, _ in held_out])
    assert np.mean(expected[hard]) > 1.6 * np.mean(expected[~hard])           # the per-landmark offset


def test_landmark_offsets_keep_what_the_landmarks_truly_differ_by_and_drop_chance():
    noise = np.tile([-0.5, 0.5], 3)                              # six cases per landmark, within variance 0.3
    landmark = np.repeat(list("abcd"), 6)
    residual = np.concatenate([noise - 0.25, noise - 0.25, noise - 0.25, noise + 0.75])   # 'd' is 1.0 harder
    # means var 0.25 - 0.3 / 6 = 0.2 between: k = 0.3 / 0.2 = 1.5 cases, weight 6 / 7.5 = 0.8 (by hand)
    assert landmark_offsets(residual, landmark) == pytest.approx({"a": -0.2, "b": -0.2, "c": -0.2, "d": 0.6})
    by_chance = np.concatenate([noise + 0.01, noise - 0.01, noise + 0.02, noise - 0.02])   # far below 0.3 / 6
    assert landmark_offsets(by_chance, landmark) == {"a": 0.0, "b": 0.0, "c": 0.0, "d": 0.0}


def test_conformal_quantile_is_the_rank_ceil_n_plus_one_times_coverage():
    scores = np.arange(1.0, 20.0)                     # 19 scores: rank ceil(20 * 0.9) = 18
    assert conformal_quantile(scores, 0.9) == 18.0
    assert conformal_quantile(scores[:5], 0.9) == np.inf


def test_a_radius_that_rests_on_the_largest_calibration_error_is_named():
    few = fit(fabricated(4, seed=3, landmarks=("a", "b", "c")))          # 12 pairs: rank ceil(13 x 0.9) = 12
    assert unsteady_radius(few) == ("the radius rests on the largest of 12 calibration errors (one outlier widens "
                                    "every radius): validate more folds")
    assert unsteady_radius(fit(fabricated(5, seed=3))) == ""               # 20 pairs: rank ceil(21 x 0.9) = 19


def test_too_few_cases_or_a_coverage_outside_0_1_are_one_line_errors():
    rows = fabricated(3, seed=3)
    with pytest.raises(LandmarkError, match="3 validated case.* at least 4"):
        fit(rows)
    with pytest.raises(LandmarkError, match="coverage must lie between 0 and 1"):
        fit(fabricated(10, seed=3), coverage=90)


def test_entries_without_peak_features_are_refused_naming_the_landmark():
    with pytest.raises(LandmarkError, match="landmark 'a' has no \"peak\" features"):
        ErrorModel(fit(fabricated(10, seed=4))).estimate({"a": {"likelihood": 0.9}})


def test_a_damaged_calibration_file_is_refused(tmp_path):
    assert read_error_model(str(tmp_path)) is None
    calibration = fit(fabricated(10, seed=5))
    (tmp_path / "landmark_uncertainty.json").write_text(json.dumps({**calibration, "quantile": None}))
    with pytest.raises(LandmarkError, match="landmark_uncertainty.json is not an uncertainty calibration"):
        read_error_model(str(tmp_path))


def calibrated_prediction(case, errors):
    """A CASE.json dict with estimates: landmark i has expected error errors[i], radius twice that."""
    return {"case": case, "coordinate_system": "LPS", "radius_coverage": 0.9, "landmarks": {
        name: {"world": [float(i), 0.0, 0.0], "voxel": [0, 0, 0], "likelihood": 1 - e / 10, "present": True,
               "expected_error_mm": e, "radius_mm": 2 * e} for i, (name, e) in enumerate(errors.items())}}


def test_review_list_is_worst_first_over_all_cases(tmp_path):
    predictions = [calibrated_prediction("c1", {"a": 1.0, "b": 5.0, "c": 3.0}),
                   calibrated_prediction("c2", {"a": 7.5, "b": 0.5, "c": 2.0})]
    assert write_review_list(predictions, 2.5, str(tmp_path / "review.csv")) == 3
    lines = (tmp_path / "review.csv").read_text().splitlines()
    assert lines[0] == "case,landmark,expected_error_mm,radius_mm,likelihood"
    assert [line.split(",") for line in lines[1:]] == [["c2", "a", "7.500", "15.000", "0.2500"],
                                                       ["c1", "b", "5.000", "10.000", "0.5000"],
                                                       ["c1", "c", "3.000", "6.000", "0.7000"]]


def test_a_review_of_an_uncalibrated_prediction_is_refused(tmp_path):
    prediction = {**calibrated_prediction("c1", {"a": 1.0}), "radius_coverage": None}
    with pytest.raises(LandmarkError, match="case 'c1' has no error estimates .*nnLandmark_calibrate"):
        write_review_list([prediction], 2.0, str(tmp_path / "review.csv"))


def test_auroc_and_reliability_table_on_known_values():
    scores = np.array([0.1, 0.4, 0.35, 0.8])
    positive = np.array([False, False, True, True])
    assert auroc(scores, positive) == pytest.approx(0.75)      # 3 of 4 (positive, negative) pairs ordered
    assert auroc(scores, np.ones(4, bool)) is None
    table = reliability_table(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.5, 1.5, 5.0, 3.0]), bins=2)
    assert table == [{"expected_mm": 1.5, "actual_mm": 1.5, "n": 2}, {"expected_mm": 3.5, "actual_mm": 4.0, "n": 2}]


def test_evaluation_reports_coverage_spearman_and_auroc_of_the_estimates(tmp_path, capsys):
    truth, folder = {}, tmp_path / "pred"
    folder.mkdir()
    expected = {"c1": {"a": 1.0, "b": 5.0}, "c2": {"a": 0.5, "b": 3.0}}
    actual = {"c1": {"a": 0.8, "b": 6.0}, "c2": {"a": 0.7, "b": 2.5}}     # each within its radius (2 x expected)
    for case, named in expected.items():
        prediction = calibrated_prediction(case, named)
        (folder / f"{case}.json").write_text(json.dumps(prediction))
        truth[case] = {n: [prediction["landmarks"][n]["world"][0] + actual[case][n], 0.0, 0.0] for n in named}
    (tmp_path / "gt.json").write_text(json.dumps(truth))
    assert evaluate.main(["-pred", str(folder), "-gt", str(tmp_path / "gt.json")]) == 0
    section = json.loads((folder / "evaluation" / "summary.json").read_text())["error_estimates"]
    assert section["radius_coverage"] == 1.0 and section["radius_coverage_stated"] == 0.9
    assert section["spearman"] == pytest.approx(1.0)      # ranks of expected 1, 5, 0.5, 3 = ranks of actual
    assert section["auroc"]["2.0"] == 1.0 and section["auroc"]["4.0"] == 1.0
    assert (folder / "evaluation" / "reliability.png").is_file()
    assert "radius covers 100.0 % (stated 90 %)" in capsys.readouterr().out


def test_predictions_of_different_coverages_are_not_judged_as_one_set(tmp_path):
    for case, coverage in (("c1", 0.9), ("c2", 0.8)):
        (tmp_path / f"{case}.json").write_text(json.dumps({**calibrated_prediction(case, {"a": 1.0}),
                                                           "radius_coverage": coverage}))
    with pytest.raises(LandmarkError, match="different radius coverages \\(0.8, 0.9\\)"):
        read_error_estimates(tmp_path)
