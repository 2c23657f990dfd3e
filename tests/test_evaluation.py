"""Evaluation: hand-computed metrics, label-map ground truth on oblique anisotropic grids, files and CLI."""
import csv
import json
import math

import numpy as np
import pytest
import SimpleITK as sitk

from nnlandmark.commands.evaluate import main
from nnlandmark.errors import LandmarkError
from nnlandmark.evaluation.ground_truth import read_ground_truth
from nnlandmark.evaluation.metrics import radial_errors, summarize
from nnlandmark.evaluation.pipeline import evaluate
from nnlandmark.io.predictions import read_predictions

# Errors by construction (3-4-5 triangles, all dyadic so exact in floating point): 5, 2.5, 1.25.
GT = {"c1": {"A": [10.0, 20.0, 30.0], "B": [0.0, 0.0, 0.0]},
      "c2": {"A": [-4.0, 8.0, 2.0], "B": [1.0, 1.0, 1.0]},          # B is not predicted
      "c4": {"A": [0.0, 0.0, 0.0]}}                                  # case only in GT
PRED = {"c1": {"A": [13.0, 24.0, 30.0], "B": [1.5, 0.0, 2.0], "C": [9.0, 9.0, 9.0]},  # C absent from GT
        "c2": {"A": [-4.75, 7.0, 2.0]},
        "c3": {"A": [0.0, 0.0, 0.0]}}                                # case only in prediction


def write_prediction(folder, case, points, system="LPS"):
    landmarks = {name: {"label": i + 1, "voxel": [0, 0, 0], "world": list(xyz), "likelihood": 0.9}
                 for i, (name, xyz) in enumerate(points.items())}
    (folder / f"{case}.json").write_text(json.dumps(
        {"case": case, "image": f"{case}_0000.nii.gz", "coordinate_system": system, "landmarks": landmarks}))


@pytest.fixture
def pred_dir(tmp_path):
    folder = tmp_path / "pred"
    folder.mkdir()
    for case, points in PRED.items():
        write_prediction(folder, case, points)
    (folder / "summary.json").write_text(json.dumps({"mre": 1.0, "landmarks": {}}))  # not a prediction
    (folder / "notes.json").write_text(json.dumps({"hello": 1}))                   # no "landmarks" key
    return folder


@pytest.fixture
def gt_file(tmp_path):
    path = tmp_path / "all_landmarks_world.json"
    path.write_text(json.dumps(GT))
    return path


def test_hand_computed_metrics():
    errors = radial_errors(PRED, GT)
    assert [(r.case, r.name) for r in errors] == [("c1", "A"), ("c1", "B"), ("c2", "A")]
    assert [r.error_mm for r in errors] == [5.0, 2.5, 1.25]
    s = summarize(errors, thresholds=(2, 2.5, 3, 4, 5))
    assert s["mre_mm"] == pytest.approx(35 / 12)
    assert s["std_mm"] == pytest.approx(math.sqrt(350) / 12)  # deviations 25/12, -5/12, -20/12; ddof 0
    assert s["median_mm"] == 2.5 and s["max_mm"] == 5.0
    assert s["sdr"] == pytest.approx({"2.0": 100 / 3, "2.5": 200 / 3, "3.0": 200 / 3, "4.0": 200 / 3, "5.0": 100.0})
    assert s["per_landmark"]["A"] == pytest.approx({"mre_mm": 3.125, "std_mm": 1.875, "n": 2})
    assert s["per_landmark"]["B"] == pytest.approx({"mre_mm": 2.5, "std_mm": 0.0, "n": 1})
    assert s["per_case"] == pytest.approx({"c1": 3.75, "c2": 1.25})
    assert (s["n_cases"], s["n_landmarks"], s["n_pairs"]) == (2, 2, 3)
    assert "ddof 0" in s["definitions"]["std"] and "<= t mm" in s["definitions"]["sdr"]
    with pytest.raises(LandmarkError):
        summarize([])


def test_evaluate_reports_what_was_left_out(pred_dir, gt_file):
    s = evaluate(pred_dir, gt_file)
    assert s["mre_mm"] == pytest.approx(35 / 12)          # C (absent from GT) and c3/c4 do not count
    assert s["missing_in_prediction"] == ["c2/B"]
    assert s["missing_in_ground_truth"] == ["c1/C"]
    assert s["cases_only_in_prediction"] == ["c3"]
    assert s["cases_only_in_ground_truth"] == ["c4"]
    assert s["landmarks_only_in_prediction"] == ["C"]


def oblique_image(size=(20, 16, 12)):
    image = sitk.Image(list(size), sitk.sitkUInt8)
    image.SetSpacing((0.5, 1.0, 2.5))
    image.SetOrigin((12.0, -30.0, 45.5))
    c, s = math.cos(math.radians(30)), math.sin(math.radians(30))
    rz = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, c, -s], [0, s, c]])  # direction columns: rotated axes
    image.SetDirection((rz @ rx).ravel().tolist())
    return image


def test_ground_truth_from_oblique_anisotropic_labelmap(tmp_path):
    dataset = tmp_path / "Dataset001_Toy"
    (dataset / "labelsTr").mkdir(parents=True)
    (dataset / "labelsTs").mkdir()
    (dataset / "dataset.json").write_text(json.dumps(
        {"labels": {"background": 0, "nasion": 1, "sella": 2}, "file_ending": ".nii.gz"}))
    ref = oblique_image()
    seg = np.zeros((12, 16, 20), np.uint8)          # numpy (z, y, x)
    seg[2:5, 6:9, 4:8] = 1                          # x voxels 4..7 -> centre index (5.5, 7, 3)
    seg[8:11, 1:4, 14:17] = 2                       # centre index (15, 2, 9)
    both = sitk.GetImageFromArray(seg)
    both.CopyInformation(ref)
    sitk.WriteImage(both, str(dataset / "labelsTr" / "case_001.nii.gz"))
    only_nasion = sitk.GetImageFromArray(np.where(seg == 1, seg, 0).astype(np.uint8))
    only_nasion.CopyInformation(ref)
    sitk.WriteImage(only_nasion, str(dataset / "labelsTs" / "case_002.nii.gz"))

    gt = read_ground_truth(dataset)[0]
    assert sorted(gt) == ["case_001", "case_002"] and sorted(gt["case_002"]) == ["nasion"]
    nasion = np.array(ref.TransformContinuousIndexToPhysicalPoint((5.5, 7.0, 3.0)))
    sella = np.array(ref.TransformContinuousIndexToPhysicalPoint((15.0, 2.0, 9.0)))
    np.testing.assert_allclose(gt["case_001"]["nasion"], nasion, atol=1e-3)
    np.testing.assert_allclose(gt["case_001"]["sella"], sella, atol=1e-3)
    np.testing.assert_allclose(gt["case_002"]["nasion"], nasion, atol=1e-3)

    # Predictions 3 mm and 4 mm off along world axes; case_002/sella has no ground truth -> excluded, reported.
    pred = tmp_path / "pred"
    pred.mkdir()
    write_prediction(pred, "case_001", {"nasion": nasion + [3, 0, 0], "sella": sella + [0, 0, 4]})
    write_prediction(pred, "case_002", {"nasion": nasion, "sella": sella + [100, 0, 0]})
    s = evaluate(pred, dataset)
    assert s["n_pairs"] == 3
    assert s["mre_mm"] == pytest.approx(7 / 3, abs=1e-3)
    assert s["missing_in_ground_truth"] == ["case_002/sella"]

    # A dataset's all_landmarks_world.json takes precedence over the label maps.
    (dataset / "all_landmarks_world.json").write_text(json.dumps({"x": {"nasion": [1, 2, 3]}}))
    assert list(read_ground_truth(dataset)[0]) == ["x"]


def test_ras_prediction_converted_and_unknown_system_rejected(tmp_path):
    write_prediction(tmp_path, "r", {"A": [-1.0, -2.0, 3.0]}, system="RAS")
    np.testing.assert_array_equal(read_predictions(tmp_path)[0]["r"]["A"], [1.0, 2.0, 3.0])
    write_prediction(tmp_path, "q", {"A": [1.0, 2.0, 3.0]}, system="IJK")
    with pytest.raises(LandmarkError, match="q.json"):
        read_predictions(tmp_path)


def test_empty_prediction_folder_and_bad_ground_truth(tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps({"landmarks": {}}))
    with pytest.raises(LandmarkError, match="no prediction"):
        read_predictions(tmp_path)
    with pytest.raises(LandmarkError, match="nope"):
        read_ground_truth(tmp_path / "nope")
    with pytest.raises(LandmarkError, match="dataset.json"):
        read_ground_truth(tmp_path)


def test_cli_unreadable_json_is_one_line_exit_2(pred_dir, gt_file, capsys):
    (pred_dir / "broken.json").write_text("{not json")
    with pytest.raises(SystemExit) as exc:
        main(["-pred", str(pred_dir), "-gt", str(gt_file)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error:") and "broken.json" in err


def test_cli_writes_table_and_files(pred_dir, gt_file, capsys):
    assert main(["-pred", str(pred_dir), "-gt", str(gt_file), "--thresholds", "2.5", "5"]) == 0
    out, err = capsys.readouterr()
    assert "MRE 2.917 ± 1.559 mm" in out and "@2.5 mm: 66.67 %" in out and "@5.0 mm: 100.00 %" in out
    assert "warning:" in err and "c2/B" in err and "c3" in err
    folder = pred_dir / "evaluation"
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["n_pairs"] == 3 and summary["missing_in_prediction"] == ["c2/B"]
    with open(folder / "per_landmark.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["landmark", "n", "mre_mm", "std_mm"]
    assert [(r["landmark"], int(r["n"]), float(r["mre_mm"])) for r in rows] == [("A", 2, 3.125), ("B", 1, 2.5)]
    with open(folder / "per_case.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["case", "mre_mm"]
    assert [(r["case"], float(r["mre_mm"])) for r in rows] == [("c1", 3.75), ("c2", 1.25)]
    # Re-running reads the same folder (its evaluation/ subfolder is not a prediction).
    assert main(["-pred", str(pred_dir), "-gt", str(gt_file), "-o", str(pred_dir / "other")]) == 0


def test_cli_empty_intersection_is_an_error(pred_dir, tmp_path, capsys):
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"zz": {"A": [0, 0, 0]}}))
    with pytest.raises(SystemExit) as exc:
        main(["-pred", str(pred_dir), "-gt", str(gt)])
    assert exc.value.code == 2 and "share no case (prediction: c1, c2" in capsys.readouterr().err


def test_cli_disjoint_landmark_names_are_named(pred_dir, tmp_path, capsys):
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"c1": {"nasion": [0, 0, 0]}, "c2": {"nasion": [0, 0, 0]}}))
    with pytest.raises(SystemExit) as exc:
        main(["-pred", str(pred_dir), "-gt", str(gt)])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert exc.value.code == 2
    assert "share no landmark name (prediction: A, B, C; ground truth: nasion)" in err
