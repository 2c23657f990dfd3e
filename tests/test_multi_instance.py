"""Multi-instance classes (dataset.json "multi_instance"): repeated names read and converted, one cone per instance
in the training targets, peaks with non-maximum suppression, Hungarian matching and the F1-calibrated threshold."""
import json

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from scipy import ndimage

from nnlandmark.dataset_conversion.convert import convert
from nnlandmark.dataset_conversion.synthetic import write_instance_sources
from nnlandmark.errors import LandmarkError
from nnlandmark.evaluation.instances import best_threshold, instance_summary, matched_distances
from nnlandmark.heatmaps import heatmap_targets, instance_peaks, refine_peaks, suppressed
from nnlandmark.io.landmark_files import read_landmark_file
from nnlandmark.landmark_set import multi_instance
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


def test_threshold_and_nms_distance_maximise_f1_on_fabricated_candidates():
    truth = {"a": np.array([[0.0, 0, 0], [12, 0, 0]]), "b": np.array([[0.0, 0, 0]])}
    # true peaks 0.9/0.8, a duplicate 1 mm beside one (0.85), false alarms at 0.3 and 0.4
    candidates = {"a": np.array([[0.2, 0, 0], [12, 0, 0], [12, 1, 0], [30, 0, 0]]),
                  "b": np.array([[0.1, 0, 0], [40, 0, 0]])}
    likelihoods = {"a": np.array([0.9, 0.8, 0.85, 0.3]), "b": np.array([0.7, 0.4])}
    assert best_threshold(candidates, likelihoods, truth)["threshold"] > 0.4
    calibration = calibrate_instance_class(candidates, likelihoods, truth)
    assert calibration["f1"] == pytest.approx(1.0)
    assert 1.0 < calibration["nms_mm"] < 12.0 and 0.4 < calibration["threshold"] <= 0.7


def test_a_dataset_of_multi_instance_classes_only_is_refused_in_one_line(tmp_path):
    images, landmarks = write_instance_sources(str(tmp_path / "src"), n_cases=2, size=40, seed=1)
    for path in (tmp_path / "src" / "landmarks").glob("*.csv"):
        path.write_text("\n".join(line for line in path.read_text().splitlines() if "sphere" not in line) + "\n")
    with pytest.raises(LandmarkError, match="needs at least one single landmark"):
        convert(str(tmp_path / "raw"), 8, "OnlyContacts", images, landmarks, multi_instance=["contact"])
    with pytest.raises(LandmarkError, match="'multi_instance' names 'tooth', which is not a landmark label"):
        multi_instance({"labels": {"background": 0, "nasion": 1, "contact": 2}, "multi_instance": ["tooth"]})
