"""Absent landmarks end to end on the trained synthetic model: calibrate -> predict "present" -> detection metrics."""
import json
import shutil

from nnlandmark.commands import calibrate, evaluate, predict

MODEL = "nnLandmarkTrainer_CPU__nnLandmarkCPUPlans__3d_fullres"


def test_calibrated_thresholds_flag_absent_landmarks_and_evaluation_counts_them(trained, tmp_path, monkeypatch,
                                                                              capsys):
    root, raw, env = trained
    raw_copy = tmp_path / "raw" / raw.name
    shutil.copytree(raw, raw_copy)
    model = tmp_path / "results" / "Dataset991_E2E" / MODEL
    shutil.copytree(root / "results" / "Dataset991_E2E" / MODEL, model)
    for info_file in (raw_copy / "dataset.json", model / "dataset.json"):
        info = json.loads(info_file.read_text())
        info["landmarks_may_be_absent"] = ["small_sphere"]
        info_file.write_text(json.dumps(info))
    # declare the small sphere absent in two validation cases and one test case
    validation = sorted(p.stem for p in (model / "fold_0" / "validation").glob("sphere_*.json"))
    world_file = raw_copy / "all_landmarks_world.json"
    world = json.loads(world_file.read_text())
    for case in validation[:2] + ["sphere_020"]:
        world[case]["small_sphere"] = None
    world_file.write_text(json.dumps(world))
    monkeypatch.setenv("nnUNet_raw", str(tmp_path / "raw"))
    monkeypatch.setenv("nnUNet_preprocessed", env["nnUNet_preprocessed"])
    monkeypatch.setenv("nnUNet_results", str(tmp_path / "results"))
    model_args = ["-d", "991", "-tr", "nnLandmarkTrainer_CPU", "-p", "nnLandmarkCPUPlans"]

    calibrate.main(model_args)
    thresholds = json.loads((model / "landmark_thresholds.json").read_text())
    likelihood = {c: json.loads((model / "fold_0" / "validation" / f"{c}.json").read_text())["landmarks"]
                  ["small_sphere"]["likelihood"] for c in validation}
    small = thresholds["small_sphere"]
    assert (small["n_present"], small["n_absent"]) == (len(validation) - 2, 2)
    present_side = [likelihood[c] >= small["threshold"] for c in validation[2:]]
    absent_side = [likelihood[c] < small["threshold"] for c in validation[:2]]
    assert small["sensitivity"] == sum(present_side) / len(present_side)
    assert small["specificity"] == sum(absent_side) / len(absent_side)
    assert thresholds["large_sphere"]["threshold"] == 0.0 and thresholds["large_sphere"]["n_absent"] == 0

    out = tmp_path / "pred"
    predict.main(["-i", str(raw / "imagesTs"), "-o", str(out), *model_args, "-device", "cpu", "--disable_tqdm"])
    flags = {}
    for file in out.glob("sphere_*.json"):
        entry = json.loads(file.read_text())["landmarks"]["small_sphere"]
        assert entry["present"] == (entry["likelihood"] >= small["threshold"]) and len(entry["world"]) == 3
        flags[file.stem] = entry["present"]
    capsys.readouterr()
    evaluate.main(["-pred", str(out), "-gt", str(raw_copy)])
    printed = capsys.readouterr().out
    detection = json.loads((out / "evaluation" / "summary.json").read_text())["detection"]
    small_counts = detection["per_landmark"]["small_sphere"]
    assert small_counts["fp"] + small_counts["tn"] == 1  # sphere_020 is declared absent
    assert small_counts["tp"] + small_counts["fn"] == 3
    assert small_counts["tn"] == (0 if flags["sphere_020"] else 1)
    assert "Detection: precision" in printed
