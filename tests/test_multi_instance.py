"""Multi-instance classes (dataset.json "multi_instance"): repeated names read and converted, one cone per instance
in the training targets, peaks with non-maximum suppression, Hungarian matching and the F1-calibrated threshold."""
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from scipy import ndimage

from nnlandmark.dataset_conversion.convert import convert
from nnlandmark.dataset_conversion.synthetic import write_instance_sources
from nnlandmark.errors import LandmarkError
from nnlandmark.evaluation.instances import best_threshold, instance_summary, matched_distances
from nnlandmark.evaluation.pipeline import evaluate_report
from nnlandmark.evaluation.report import format_table
from nnlandmark.heatmaps import edt_heatmaps, heatmap_targets, instance_centres, instance_peaks, refine_peaks, suppressed
from nnlandmark.io.landmark_files import read_landmark_file
from nnlandmark.landmark_set import multi_instance
from nnlandmark.planning import instance_gaps_mm
from nnlandmark.presence import calibrate_instance_class
from nnlandmark.trainers.instances import InstanceLabelTransform


def test_repeated_names_are_instances_only_where_declared(tmp_path):
    path = tmp_path / "case.csv"
    path.write_text("name,i,j,k\nnasion,1,2,3\ncontact,4,5,6\ncontact,7,8,9\n")
    with pytest.raises(LandmarkError, match="'contact' appears twice.*--multi-instance 'contact'"):
        read_landmark_file(str(path))
    read = read_landmark_file(str(path), repeatable={"contact", "tooth"})
    assert read.coordinate_system == "voxel" and list(read.points) == ["nasion"]
    np.testing.assert_array_equal(read.instances["contact"], [[4, 5, 6], [7, 8, 9]])
    assert "tooth" not in read.instances          # declared, none in this case
    json_path = tmp_path / "case.json"
    json_path.write_text(json.dumps({"coordinate_system": "LPS", "landmarks": {"contact": [[1, 2, 3], [4, 5, 6]],
                                                                               "nasion": [0, 0, 0]}}))
    assert len(read_landmark_file(str(json_path), repeatable={"contact"}).instances["contact"]) == 2


def test_conversion_paints_one_blob_per_instance_and_lists_them_in_world_mm(tmp_path):
    images, landmarks = write_instance_sources(str(tmp_path / "src"), n_cases=4, size=40, max_contacts=4, seed=1)
    folder = convert(str(tmp_path / "raw"), 7, "Contacts", images, landmarks, multi_instance=["contact"])
    dataset = json.loads((tmp_path / "raw" / "Dataset007_Contacts" / "dataset.json").read_text())
    assert dataset["multi_instance"] == ["contact"] and dataset["labels"]["contact"] == 3
    world = json.loads((tmp_path / "raw" / "Dataset007_Contacts" / "all_instances_world.json").read_text())
    singles = json.loads((tmp_path / "raw" / "Dataset007_Contacts" / "all_landmarks_world.json").read_text())
    assert all("contact" not in named for case, named in singles.items() if case != "coordinate_system")
    for case in ("contacts_000", "contacts_001", "contacts_002", "contacts_003"):
        rows = [line.split(",") for line in (tmp_path / "src" / "landmarks" / f"{case}.csv").read_text().split()[1:]]
        voxels = np.array([[float(v) for v in row[1:]] for row in rows if row[0] == "contact"]).reshape(-1, 3)
        # synthetic geometry: origin (-30, 12.5, 100), spacing 1, y flipped
        np.testing.assert_allclose(np.reshape(world[case]["contact"], (-1, 3)),
                                   np.array([-30.0, 12.5, 100.0]) + voxels * [1, -1, 1], atol=1e-6)
        seg = sitk.GetArrayFromImage(sitk.ReadImage(f"{folder}/labelsTr/{case}.nii.gz"))
        assert ndimage.label(seg == 3)[1] == len(voxels)


def test_each_instance_gets_its_own_cone_in_the_targets():
    seg = np.zeros((1, 24, 24, 24), np.int16)
    seg[0, 3:6, 3:6, 3:6] = 2                   # two instances of the class (label 2)
    seg[0, 15:18, 4:7, 10:13] = 2
    seg[0, 10:13, 18:21, 18:21] = 1             # single landmark 'a'
    relabelled = InstanceLabelTransform(2, [2]).apply({"segmentation": torch.from_numpy(seg)})["segmentation"]
    heat = heatmap_targets(relabelled[None], 2, 6.0, instance_channels=[1])[0]
    assert float(heat[0, 11, 19, 19]) == pytest.approx(1.0)          # the landmark's cone at its centre
    assert float(heat[1, 4, 4, 4]) == pytest.approx(1.0)             # each instance's cone at its own centre
    assert float(heat[1, 16, 5, 11]) == pytest.approx(1.0)
    assert float(heat[1, 10, 5, 8]) < 0.5                            # between them: lower
    without = heatmap_targets(torch.from_numpy(seg)[None], 2, 6.0)[0]  # read as a landmark: one cone, mid-way
    assert float(without[1, 4, 4, 4]) < 0.2
    narrow = heatmap_targets(relabelled[None], 2, 6.0, instance_channels=[1], instance_radius=[3.0])[0]
    assert float(narrow[1, 4, 4, 6]) == pytest.approx(1 / 3)         # 2 voxels from an instance: 1 - 2 / 3
    assert float(narrow[1, 16, 5, 11]) == pytest.approx(1.0)
    assert float(narrow[0, 11, 19, 21]) == pytest.approx(2 / 3)      # the landmark keeps its cone: 1 - 2 / 6


def test_the_planner_measures_how_closely_each_class_packs_its_instances():
    truth = {"a": {"contact": np.array([[0.0, 0, 0], [10, 0, 0], [30, 0, 0]]), "tooth": np.array([[5.0, 5, 5]])},
             "b": {"contact": np.array([[0.0, 0, 0], [0, 4, 0]]), "tooth": np.zeros((0, 3))},
             "c": {"contact": np.zeros((0, 3))}}
    # nearest other instance: 10, 10, 20 (case a), 4, 4 (case b); the 5th percentile of those is 4
    assert instance_gaps_mm(truth, ["contact", "tooth"]) == {"contact": pytest.approx(4.0)}   # tooth: never two


def test_each_instance_is_pulled_to_its_own_place_by_the_spatial_softmax_term():
    from nnlandmark.losses import TopKBCESpatialSoftmaxLoss

    def peaked(*centres):   # logits of two channels (landmark 'a', class) with 6-voxel cones at ``centres``
        centres = torch.tensor([[(11, 19, 19)] + list(centres)], dtype=torch.float32)
        cones = edt_heatmaps(centres, torch.ones(centres.shape[:2], dtype=torch.bool), (24, 24, 24), 6.0)
        return torch.stack([cones[:, 0], cones[:, 1:].amax(1)], 1) * 12 - 4

    seg = np.zeros((1, 24, 24, 24), np.int16)
    seg[0, 3:6, 3:6, 3:6] = 2                   # two instances of the class, centres (4,4,4) and (16,5,11)
    seg[0, 15:18, 4:7, 10:13] = 2
    seg[0, 10:13, 18:21, 18:21] = 1             # single landmark 'a' at (11,19,19)
    target = InstanceLabelTransform(2, [2]).apply({"segmentation": torch.from_numpy(seg)})["segmentation"][None]
    loss = TopKBCESpatialSoftmaxLoss(2, 6.0, instance_channels=[1])
    both, one, between = peaked((4, 4, 4), (16, 5, 11)), peaked((4, 4, 4)), peaked((10, 4, 8))
    assert float(loss(both, target)) < min(float(loss(one, target)), float(loss(between, target)))
    instances = instance_centres(target, 2, 1)
    np.testing.assert_allclose(instances[0][0, 0], [[4, 4, 4], [16, 5, 11]])
    terms = {name: loss.instance_term(x[:, [1]], *instances)[0, 0].numpy()
             for name, x in (("both", both), ("one", one), ("between", between))}
    assert terms["one"][0] == pytest.approx(terms["both"][0])     # the first instance is found in both
    assert terms["one"][1] > terms["both"][1] + 0.5                 # the second instance's cell has no peak
    assert (terms["between"] > terms["both"] + 2).all()             # one peak mid-way serves neither
    # a class with one instance: its term is the term of a landmark at that place
    single = np.zeros((1, 24, 24, 24), np.int16)
    single[0, 15:18, 4:7, 10:13] = 1
    as_instance = InstanceLabelTransform(1, [1]).apply({"segmentation": torch.from_numpy(single)})["segmentation"]
    logits = torch.randn(1, 1, 24, 24, 24)
    as_class = TopKBCESpatialSoftmaxLoss(1, 6.0, instance_channels=[0])(logits, as_instance[None])
    as_landmark = TopKBCESpatialSoftmaxLoss(1, 6.0)(logits, torch.from_numpy(single)[None])
    assert float(as_class) == pytest.approx(float(as_landmark), rel=1e-5)


def test_peaks_keep_separate_instances_and_suppression_drops_near_duplicates_in_mm():
    heat = torch.zeros(20, 20, 20)
    for centre, height in (((4, 4, 4), 0.9), ((4, 4, 7), 0.8), ((14, 14, 14), 0.6), ((16, 14, 14), 0.55),
                           ((15, 5, 5), 0.4), ((10, 2, 17), 0.2)):
        heat[centre] = height
    peaks, values = instance_peaks(heat, floor=0.5)                 # the last two lie below the floor
    assert peaks.tolist() == [[4, 4, 4], [4, 4, 7], [14, 14, 14], [16, 14, 14]]
    np.testing.assert_allclose(values, [0.9, 0.8, 0.6, 0.55])
    # with 2 mm along the last axis, (4,4,7) lies 6 mm from (4,4,4): kept; (16,14,14) 2 mm from a stronger peak: not
    assert suppressed(peaks * [1.0, 1.0, 2.0], values, 2.5).tolist() == [0, 1, 2]
    plateau = torch.zeros(10, 10, 10)
    plateau[4:6, 3, 3] = 0.7
    peaks, values = instance_peaks(plateau, floor=0.5)              # two equal maxima, one peak
    refined = refine_peaks(plateau[None].expand(len(peaks), 10, 10, 10), peaks)
    np.testing.assert_allclose(refined, [[4.5, 3, 3]] * 2)
    assert suppressed(refined, values, 0.5).tolist() == [0]


def test_hungarian_matching_counts_hits_misses_and_false_alarms():
    truth = np.array([[0.0, 0, 0], [10, 0, 0], [20, 0, 0]])
    found = np.array([[9.0, 0, 0], [0.5, 0, 0], [50, 0, 0]])      # two hits (1 and 0.5 mm), one far away
    np.testing.assert_allclose(sorted(matched_distances(found, truth, 4.0)), [0.5, 1.0])
    summary = instance_summary({"a": {"contact": found}, "b": {"contact": np.zeros((0, 3))}},
                               {"a": {"contact": truth}, "b": {"contact": np.array([[1.0, 1, 1]])}}, 4.0)
    row = summary["per_class"]["contact"]
    assert (row["tp"], row["fp"], row["fn"]) == (2, 1, 2)
    assert row["precision"] == pytest.approx(2 / 3) and row["recall"] == pytest.approx(0.5)
    assert row["f1"] == pytest.approx(4 / 7) and row["matched_mre_mm"] == pytest.approx(0.75)
    assert row["mean_abs_count_error"] == pytest.approx(0.5)          # +0 in a, -1 in b
    assert summary["errors_per_case"] == {"a": 2, "b": 1}             # a: a false alarm and a miss; b: a miss


def test_threshold_and_nms_distance_maximise_f1_on_fabricated_candidates():
    truth = {"a": np.array([[0.0, 0, 0], [12, 0, 0]]), "b": np.array([[0.0, 0, 0]])}
    # true peaks 0.9/0.8, a duplicate 1 mm beside one (0.85), false alarms at 0.3 and 0.4
    candidates = {"a": np.array([[0.2, 0, 0], [12, 0, 0], [12, 1, 0], [30, 0, 0]]),
                  "b": np.array([[0.1, 0, 0], [40, 0, 0]])}
    likelihoods = {"a": np.array([0.9, 0.8, 0.85, 0.3]), "b": np.array([0.7, 0.4])}
    assert best_threshold(candidates, likelihoods, truth)["threshold"] > 0.4
    calibration = calibrate_instance_class(candidates, likelihoods, truth)
    assert calibration["f1"] == pytest.approx(1.0)
    assert 1.0 < calibration["nms_mm"] < 12.0 and calibration["threshold"] == pytest.approx((0.4 + 0.7) / 2)


def test_with_clean_candidates_the_threshold_lies_midway_below_the_weakest_true_peak():
    """Every threshold from the candidate floor (0.05) to the weakest true peak (0.78) has F1 1: the middle of that
    range keeps a new case's peak of 0.6, which the range's top edge would miss."""
    truth = {"a": np.array([[0.0, 0, 0], [12, 0, 0]]), "b": np.array([[0.0, 0, 0]])}
    candidates = {"a": truth["a"] + 0.2, "b": truth["b"] - 0.1}
    likelihoods = {"a": np.array([0.85, 0.78]), "b": np.array([0.8])}
    found = best_threshold(candidates, likelihoods, truth, floor=0.05)
    assert found["threshold"] == pytest.approx((0.05 + 0.78) / 2) and found["f1"] == pytest.approx(1.0)
    assert calibrate_instance_class(candidates, likelihoods, truth)["threshold"] == pytest.approx(0.415)


def test_a_dataset_of_multi_instance_classes_only_is_converted_and_judged_by_its_instances(tmp_path):
    images, landmarks = write_instance_sources(str(tmp_path / "src"), n_cases=3, size=40, seed=3)
    for path in (tmp_path / "src" / "landmarks").glob("*.csv"):   # contacts only; a case with none: a header alone
        path.write_text("\n".join(line for line in path.read_text().splitlines() if "sphere" not in line) + "\n")
    sources = {p.stem: read_landmark_file(str(p), repeatable={"contact"}) for p in sorted(Path(landmarks).iterdir())}
    assert [len(s.instances.get("contact", [])) for s in sources.values()] == [5, 0, 2]
    folder = Path(convert(str(tmp_path / "raw"), 8, "OnlyContacts", images, landmarks, multi_instance=["contact"]))
    assert json.loads((folder / "dataset.json").read_text())["multi_instance"] == ["contact"]
    truth = json.loads((folder / "all_instances_world.json").read_text())
    found = {case: {"contact": [{"world": p, "likelihood": 0.9} for p in named["contact"][1:]]}   # the first missed
             for case, named in truth.items() if case != "coordinate_system"}
    report = evaluate_report(({case: {} for case in found}, None), str(folder), tmp_path / "eval", qc=1,
                             instances=found)
    scores = report.summary["instances"]["per_class"]["contact"]
    assert (scores["tp"], scores["fp"], scores["fn"]) == (5, 0, 2) and "mre_mm" not in report.summary
    assert report.summary["instances"]["errors_per_case"] == {"contacts_000": 1, "contacts_001": 0,
                                                              "contacts_002": 1}
    assert [p.name for p in report.written] == ["summary.json", "contacts_000.png"]   # no empty MRE tables
    assert format_table(report.summary).startswith("Evaluated 3 cases. No single landmark")
    with pytest.raises(LandmarkError, match="'multi_instance' names 'tooth', which is not a landmark label"):
        multi_instance({"labels": {"background": 0, "nasion": 1, "contact": 2}, "multi_instance": ["tooth"]})


def test_ensemble_keeps_the_instances_half_the_models_found_at_their_mean(tmp_path, capsys):
    from nnlandmark.commands import ensemble

    def write(folder, found):
        folder.mkdir()
        instances = [{"voxel": list(w), "world": list(w), "likelihood": like} for w, like in found]
        (folder / "case_000.json").write_text(json.dumps({
            "case": "case_000", "image": "case_000_0000.nii.gz", "coordinate_system": "LPS", "radius_coverage": None,
            "landmarks": {"nasion": {"label": 1, "voxel": [1, 2, 3], "world": [1, 2, 3], "likelihood": 0.9}},
            "instances": {"contact": instances}}))

    write(tmp_path / "a", [((0, 0, 0), 0.9), ((10, 0, 0), 0.8), ((30, 0, 0), 0.6)])
    write(tmp_path / "b", [((11, 0, 0), 0.7), ((1, 0, 0), 0.5), ((50, 0, 0), 0.4)])
    write(tmp_path / "c", [((0.5, 0, 0), 0.6), ((70, 0, 0), 0.9)])
    ensemble.main(["-i", str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "c"), "-o", str(tmp_path / "out"),
                   "--match_mm", "3", "--format", "json,mrk.json"])
    found = json.loads((tmp_path / "out" / "case_000.json").read_text())["instances"]["contact"]
    # (0,0,0), (1,0,0), (0.5,0,0) are one instance; (10,0,0) and (11,0,0) another; the rest one model each
    np.testing.assert_allclose([e["world"] for e in found], [[0.5, 0, 0], [10.5, 0, 0]])
    np.testing.assert_allclose([e["likelihood"] for e in found], [(0.9 + 0.5 + 0.6) / 3, (0.8 + 0.7) / 3])
    slicer = read_landmark_file(str(tmp_path / "out" / "case_000.mrk.json"), repeatable={"contact"})
    assert len(slicer.instances["contact"]) == 2
    with pytest.raises(SystemExit) as exc:
        ensemble.main(["-i", str(tmp_path / "a"), str(tmp_path / "b"), "-o", str(tmp_path / "x"), "--match_mm", "0"])
    assert exc.value.code == 2 and "--match_mm: must be a positive number, got '0'" in capsys.readouterr().err


def test_qc_rows_pair_each_matched_instance_and_list_the_rest():
    from nnlandmark.evaluation.instances import with_instance_rows

    points, truth = {"c1": {"nasion": np.zeros(3)}}, {"c1": {"nasion": np.ones(3)}}
    found = {"c1": {"contact": np.array([[20.0, 0, 0], [0, 0, 0], [50, 0, 0]])}}
    true = {"c1": {"contact": np.array([[1.0, 0, 0], [21, 0, 0], [90, 0, 0]])}}
    pred_rows, true_rows = with_instance_rows(points, truth, found, true, match_mm=4.0)
    assert set(pred_rows["c1"]) == {"nasion", "contact #1", "contact #2", "contact #3"}
    assert set(true_rows["c1"]) == {"nasion", "contact #1", "contact #2", "contact #4"}
    pairs = [(pred_rows["c1"][f"contact #{k}"], true_rows["c1"][f"contact #{k}"]) for k in (1, 2)]
    assert sorted(float(np.linalg.norm(p - t)) for p, t in pairs) == [1.0, 1.0]     # matched: the same row
    np.testing.assert_allclose(pred_rows["c1"]["contact #3"], [50, 0, 0])          # a false alarm
    np.testing.assert_allclose(true_rows["c1"]["contact #4"], [90, 0, 0])          # a miss
    assert "contact #1" not in points["c1"]                                          # the inputs stay as they were
