"""Biometry (distance errors on an anisotropic grid) and the side-by-side comparison of prediction folders."""
import csv
import json
import math

import numpy as np
import pytest
import SimpleITK as sitk

from nnlandmark.commands.evaluate import main
from nnlandmark.errors import LandmarkError
from nnlandmark.evaluation.biometry import parse_pairs
from nnlandmark.evaluation.pipeline import evaluate
from nnlandmark.evaluation.biometry import biometry_errors


@pytest.fixture
def anisotropic_dataset(tmp_path, write_prediction):
    """Spacing (0.5, 1, 2.5), origin 0, identity: cube centres a=(2,2,2), b=(8,6,2), c=(2,2,6) voxels
    -> world a=(1,2,5), b=(4,6,5), c=(1,2,15): |ab| = 5 mm (7.2 in voxels), |ac| = 10 mm (4 in voxels)."""
    dataset = tmp_path / "Dataset007_Bio"
    (dataset / "labelsTr").mkdir(parents=True)
    (dataset / "dataset.json").write_text(json.dumps(
        {"labels": {"background": 0, "a": 1, "b": 2, "c": 3}, "file_ending": ".nii.gz",
         "biometry_pairs": [["a", "b"], ["a", "c"]]}))
    seg = np.zeros((10, 10, 12), np.uint8)   # numpy (z, y, x)
    seg[1:4, 1:4, 1:4] = 1
    seg[1:4, 5:8, 7:10] = 2
    seg[5:8, 1:4, 1:4] = 3
    image = sitk.GetImageFromArray(seg)
    image.SetSpacing((0.5, 1.0, 2.5))
    for case in ("k1", "k2"):
        sitk.WriteImage(image, str(dataset / "labelsTr" / f"{case}.nii.gz"))
    pred = tmp_path / "pred"
    write_prediction(pred, "k1", {"a": [1, 2, 5], "b": [7, 10, 5], "c": [1, 2, 17]})   # |ab| 10, |ac| 12
    write_prediction(pred, "k2", {"a": [1, 2, 5], "c": [1, 2, 15]})                   # b not predicted; |ac| 10
    return dataset, pred


def test_biometry_hand_computed_on_anisotropic_grid(anisotropic_dataset, tmp_path):
    dataset, pred = anisotropic_dataset
    s = evaluate(pred, dataset, out_dir=tmp_path / "out")
    bio = s["biometry"]
    assert bio["pairs"]["a:b"] == pytest.approx({"mean_mm": 5.0, "std_mm": 0.0, "n": 1}, abs=1e-6)
    assert bio["pairs"]["a:c"] == pytest.approx({"mean_mm": 1.0, "std_mm": 1.0, "n": 2}, abs=1e-6)
    # pooled errors 5, 2, 0: mean 7/3, population std sqrt(((8/3)^2 + (1/3)^2 + (7/3)^2) / 3) = sqrt(38)/3
    assert bio["pooled"] == pytest.approx({"mean_mm": 7 / 3, "std_mm": math.sqrt(38) / 3, "n": 3}, abs=1e-6)
    assert "|‖â − b̂‖ − ‖a − b‖|" in bio["definition"]
    with open(tmp_path / "out" / "biometry.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["pair", "case", "true_mm", "pred_mm", "error_mm"]
    got = [(r["pair"], r["case"], float(r["true_mm"]), float(r["pred_mm"]), float(r["error_mm"])) for r in rows]
    expected = [("a:b", "k1", 5, 10, 5), ("a:c", "k1", 10, 12, 2), ("a:c", "k2", 10, 10, 0)]
    assert [g[:2] for g in got] == [e[:2] for e in expected]
    np.testing.assert_allclose([g[2:] for g in got], [e[2:] for e in expected], atol=1e-6)


def test_biometry_pairs_from_command_line_override_dataset(anisotropic_dataset, tmp_path, capsys):
    dataset, pred = anisotropic_dataset
    assert main(["-pred", str(pred), "-gt", str(dataset), "-o", str(tmp_path / "o"), "--pairs", "b:c"]) == 0
    out = capsys.readouterr().out
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    # k1 only: true |bc| = |(-3, -4, 10)| = sqrt(125); predicted |(-6, -8, 12)| = sqrt(244)
    assert list(summary["biometry"]["pairs"]) == ["b:c"]
    assert summary["biometry"]["pairs"]["b:c"]["mean_mm"] == pytest.approx(math.sqrt(244) - math.sqrt(125), abs=1e-6)
    assert "Biometry" in out and "b:c" in out and "pooled" in out
    assert main(["-pred", str(pred), "-gt", str(dataset), "-o", str(tmp_path / "d")]) == 0   # dataset.json pairs
    assert "a:c" in capsys.readouterr().out


def test_bad_pairs_are_one_line_errors(anisotropic_dataset, capsys):
    dataset, pred = anisotropic_dataset
    for bad in (["a"], ["a:a"], ["a:b:c"]):
        with pytest.raises(LandmarkError):
            parse_pairs(bad)
    with pytest.raises(SystemExit) as exc:
        main(["-pred", str(pred), "-gt", str(dataset), "--pairs", "a"])
    last_line = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]  # after progress bars
    assert exc.value.code == 2 and last_line.startswith("error: --pairs")
    info = json.loads((dataset / "dataset.json").read_text())
    info["biometry_pairs"] = [["a"]]
    (dataset / "dataset.json").write_text(json.dumps(info))
    with pytest.raises(SystemExit):
        main(["-pred", str(pred), "-gt", str(dataset)])
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "dataset.json" in err


def test_biometry_skips_cases_without_both_landmarks():
    gt = {"x": {"a": [0, 0, 0], "b": [0, 0, 3]}, "y": {"a": [0, 0, 0]}}
    pred = {"x": {"a": [0, 0, 0], "b": [0, 4, 3]}, "y": {"a": [1, 1, 1], "b": [2, 2, 2]}}
    records = biometry_errors(pred, gt, [("a", "b")])
    assert [(r.case, r.true_mm, r.pred_mm, r.error_mm) for r in records] == [("x", 3.0, 5.0, 2.0)]


GT = {"c1": {"A": [0, 0, 0], "B": [10, 0, 0]}, "c2": {"A": [0, 0, 0], "B": [10, 0, 0]}, "c3": {"A": [0, 0, 0]}}


@pytest.fixture
def two_methods(tmp_path, write_prediction):
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps(GT))
    # method_one errors: c1/A 1, c1/B 3, c2/A 5, c2/B 2.5; plus c3/A (not in method_two) and c1/C (not in GT)
    write_prediction(tmp_path / "method_one", "c1", {"A": [1, 0, 0], "B": [10, 3, 0], "C": [0, 0, 0]})
    write_prediction(tmp_path / "method_one", "c2", {"A": [0, 0, 5], "B": [8.5, 2, 0]})
    write_prediction(tmp_path / "method_one", "c3", {"A": [0, 0, 0]})
    # method_two errors: c1/A 2, c1/B 4, c2/A 0 ; c2/B not predicted -> excluded for both methods
    write_prediction(tmp_path / "method_two", "c1", {"A": [0, 2, 0], "B": [10, 0, 4]})
    write_prediction(tmp_path / "method_two", "c2", {"A": [0, 0, 0]})
    return gt, tmp_path / "method_one", tmp_path / "method_two"


def test_comparison_table_on_common_pairs(two_methods, tmp_path, capsys):
    gt, one, two = two_methods
    assert main(["-pred", str(one), str(two), "-gt", str(gt), "-o", str(tmp_path / "cmp")]) == 0
    out, err = capsys.readouterr()
    with open(tmp_path / "cmp" / "comparison.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["method", "n_cases", "n_pairs", "mre_mm", "std_mm", "sdr_2mm", "sdr_3mm", "sdr_4mm"]
    # common pairs: c1/A, c1/B, c2/A.  one: 1, 3, 5 -> 3 ± sqrt(8/3); two: 2, 4, 0 -> 2 ± sqrt(8/3)
    table = {r["method"]: [float(r[k]) for k in list(r)[1:]] for r in rows}
    assert table["method_one"] == pytest.approx([2, 3, 3.0, math.sqrt(8 / 3), 100 / 3, 200 / 3, 200 / 3])
    assert table["method_two"] == pytest.approx([2, 3, 2.0, math.sqrt(8 / 3), 200 / 3, 200 / 3, 100.0])
    assert "method_one     3.00 ± 1.63       33.33%    66.67%    66.67%" in out
    assert "method_two     2.00 ± 1.63       66.67%    66.67%   100.00%" in out
    assert "3 (case, landmark) pairs common" in out
    assert "method_one: 2 (case, landmark) pair(s) not common" in err      # c2/B and c3/A
    assert (tmp_path / "cmp" / "sdr_curve.png").stat().st_size > 1000


def test_comparison_default_output_and_no_overlap(two_methods, tmp_path, capsys, write_prediction):
    gt, one, two = two_methods
    assert main(["-pred", str(one), str(two), "-gt", str(gt)]) == 0
    assert (tmp_path / "comparison" / "comparison.csv").is_file()
    write_prediction(tmp_path / "other", "zz", {"A": [0, 0, 0]})
    with pytest.raises(SystemExit) as exc:
        main(["-pred", str(one), str(tmp_path / "other"), "-gt", str(gt)])
    assert exc.value.code == 2 and "share no (case, landmark) pair" in capsys.readouterr().err


def test_pair_without_any_measurement_is_reported(anisotropic_dataset, tmp_path, capsys, write_prediction):
    dataset, pred = anisotropic_dataset
    write_prediction(pred, "k1", {"a": [1, 2, 5], "c": [1, 2, 17]})     # b is now predicted in no case
    assert main(["-pred", str(pred), "-gt", str(dataset), "-o", str(tmp_path / "o"), "--pairs", "a:b"]) == 0
    assert "biometry pair a:b: no case" in capsys.readouterr().err
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["biometry"]["pairs"]["a:b"] == {"mean_mm": None, "std_mm": None, "n": 0}
