"""The planner decides and the commands follow: the coarse-stage rule, the trained model a command means without -tr
and -p, a cascade's coarse stage and search radii, the choice of the best model and coordinate ensembles; and the
whole default path on CPU without a trainer name (slow)."""
import json
from pathlib import Path

import numpy as np
import pytest

from nnlandmark.commands import ensemble as ensemble_command
from nnlandmark.commands import find_best_configuration as best_command
from nnlandmark.planning import needs_coarse_stage
from nnlandmark.stages import coarse_stage_folder, cv_search_radii, find_model_folder, read_search_radii

CPU = "nnLandmarkCPUPlans"
FINE, COARSE, SINGLE = ("nnLandmarkTrainer_CPU_SpatialSoftmax_Fine", "nnLandmarkTrainer_CPU_SpatialSoftmax",
                        "nnLandmarkTrainer_CPU")


def test_coarse_stage_rule_many_landmarks_or_a_volume_of_many_patches():
    assert needs_coarse_stage(32, (80, 96, 80), (32, 32, 32)) == "32 landmarks (> 4)"
    assert needs_coarse_stage(3, (96, 96, 96), (32, 32, 32)) == "the median volume holds 27 patches (> 8)"
    assert needs_coarse_stage(3, (64, 64, 64), (32, 32, 32)) is None          # the demo: 8 patches, 3 landmarks
    assert needs_coarse_stage(4, (40, 40, 40), (32, 32, 32)) is None


def model(results, trainer, plans, configuration, planned=None, folds=()):
    """A model folder as nnU-Net lays it out, with plans.json whose configurations name their planned trainers."""
    folder = results / "Dataset700_Sel" / f"{trainer}__{plans}__{configuration}"
    folder.mkdir(parents=True)
    configurations = {c: {"nnlandmark_trainer": t} for c, t in (planned or {}).items()}
    (folder / "plans.json").write_text(json.dumps({"configurations": configurations}))
    (folder / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "A": 1, "B": 2},
                                                     "channel_names": {"0": "MR"}, "file_ending": ".nii.gz"}))
    for fold in folds:
        (folder / f"fold_{fold}" / "validation").mkdir(parents=True)
    return folder


@pytest.fixture
def results(nnunet_dirs):
    (nnunet_dirs / "nnUNet_raw" / "Dataset700_Sel").mkdir()
    return nnunet_dirs / "nnUNet_results"


CASCADE = {"3d_whole": COARSE, "3d_fullres": FINE}


def test_the_model_a_command_means_is_the_planned_one(results, fails_with):
    fine = model(results, FINE, CPU, "3d_fullres", CASCADE)
    model(results, SINGLE, CPU, "3d_fullres", CASCADE)
    assert find_model_folder(700, "3d_fullres") == str(fine)              # two trained: the plans chose the fine one
    assert find_model_folder(700, "3d_fullres", SINGLE).endswith(f"{SINGLE}__{CPU}__3d_fullres")
    gpu = model(results, "nnLandmarkTrainer", "nnUNetPlans", "3d_fullres")
    assert find_model_folder(700, "3d_fullres", device="cuda") == str(gpu)    # both plans trained: the device's
    assert find_model_folder(700, "3d_fullres", device="cpu") == str(fine)
    with pytest.raises(Exception) as error:
        find_model_folder(700, "3d_lowres")
    assert "no trained model *__*__3d_lowres" in str(error.value) and "Dataset700_Sel" in str(error.value)


def test_a_fine_stage_finds_its_coarse_stage_in_its_plans(results):
    fine = model(results, FINE + "_Curve", CPU, "3d_fullres", CASCADE)
    assert Path(coarse_stage_folder(str(fine))).name == f"{COARSE}__{CPU}__3d_whole"
    assert coarse_stage_folder(str(model(results, SINGLE, CPU, "3d_fullres", CASCADE))) is None
    lonely = model(results, FINE, "nnUNetPlans", "3d_fullres", {})
    with pytest.raises(Exception) as error:
        coarse_stage_folder(str(lonely))
    assert "is the fine stage of a cascade, but its plans have no '3d_whole' stage" in str(error.value)
    planar = model(results, FINE, CPU, "2d", {"2d_whole": COARSE, "2d": FINE})     # 2D images larger than a patch
    assert Path(coarse_stage_folder(str(planar))).name == f"{COARSE}__{CPU}__2d_whole"


def test_a_fine_stage_without_its_coarse_stage_is_refused_before_any_work(results, tmp_path, fails_with):
    from nnlandmark.commands import predict
    model(results, FINE, CPU, "3d_fullres", CASCADE, folds=(0,))
    err = fails_with(predict.main, ["-i", str(tmp_path), "-o", str(tmp_path / "out"), "-d", "700", "-device", "cpu"])
    assert f"{FINE}__{CPU}__3d_fullres is the fine stage of a cascade" in err
    assert "which is not trained" in err and f"{COARSE}__{CPU}__3d_whole" in err and "-prev_stage_predictions" in err
    assert not (tmp_path / "out").exists()


def write_cv(folder, fold, errors, truth):
    """Validation predictions of one fold: each case's landmark A/B moved along x by the given error."""
    for case, (a, b) in errors.items():
        landmarks = {"A": {"label": 1, "voxel": [0, 0, 0], "world": [truth[case]["A"][0] + a, 0.0, 0.0],
                           "likelihood": 0.9, "present": True},
                     "B": {"label": 2, "voxel": [0, 0, 0], "world": [truth[case]["B"][0] + b, 10.0, 0.0],
                           "likelihood": 0.8, "present": True}}
        (folder / f"fold_{fold}" / "validation" / f"{case}.json").write_text(json.dumps(
            {"case": case, "image": case, "coordinate_system": "LPS", "landmarks": landmarks}))


@pytest.fixture
def cv_errors(results, nnunet_dirs):
    """20 cases in two folds: landmark A off by 1..20 mm, B by 1 mm; the raw dataset's world table as truth."""
    truth = {f"c{i:02d}": {"A": [0.0, 0.0, 0.0], "B": [0.0, 10.0, 0.0]} for i in range(20)}
    (nnunet_dirs / "nnUNet_raw" / "Dataset700_Sel" / "all_landmarks_world.json").write_text(
        json.dumps({"coordinate_system": "LPS", **truth}))
    errors = {f"c{i:02d}": (float(i + 1), 1.0) for i in range(20)}
    return truth, errors


def test_search_radius_is_a_quantile_of_the_coarse_cross_validation_errors(results, cv_errors):
    truth, errors = cv_errors
    coarse = model(results, COARSE, CPU, "3d_whole", CASCADE, folds=(0, 1))
    write_cv(coarse, 0, dict(list(errors.items())[:10]), truth)
    write_cv(coarse, 1, dict(list(errors.items())[10:]), truth)
    # 95th percentiles (linear): A's 1..20 mm -> 19.05; all 40 errors (21 of 1 mm, then 2..20) -> 18.05
    assert cv_search_radii(str(coarse), 700) == pytest.approx({"A": 1.25 * 19.05, "B": 1.25 * 18.05})
    assert read_search_radii(str(coarse), ["A", "B"]) is None                  # not written: no validation ran
    (coarse / "search_radius.json").write_text(json.dumps({"A": 20.0, "B": float("nan")}))
    with pytest.raises(Exception) as error:
        read_search_radii(str(coarse), ["A", "B"])
    assert "search_radius.json: no positive search radius for landmark 'B'" in str(error.value)


def test_best_configuration_compares_single_stages_cascades_and_averages(results, cv_errors, capsys):
    truth, errors = cv_errors
    coarse = model(results, COARSE, CPU, "3d_whole", CASCADE, folds=(0,))
    fine = model(results, FINE, CPU, "3d_fullres", CASCADE, folds=(0,))
    write_cv(coarse, 0, {c: (4.0, 4.0) for c in errors}, truth)                     # MRE 4
    write_cv(fine, 0, {c: (-2.0, -2.0) for c in errors}, truth)                      # MRE 2, opposite side
    for path in (fine / "fold_0" / "validation").glob("*.json"):                     # read within the coarse stage
        doc = json.loads(path.read_text())
        for entry in doc["landmarks"].values():
            entry["stage"] = "fine"
        path.write_text(json.dumps(doc))
    best_command.main(["-d", "700"])
    out = capsys.readouterr().out
    info = json.loads((results / "Dataset700_Sel" / "inference_information.json").read_text())
    mre = {r["model"]: r["mre_mm"] for r in info["models"]}
    assert mre[f"cascade 3d_whole -> 3d_fullres ({FINE}, {CPU})"] == pytest.approx(2.0)
    assert mre[f"3d_whole ({COARSE}, {CPU})"] == pytest.approx(4.0)
    average = [r for r in info["models"] if r["model"].startswith("average of")]
    assert len(average) == 1 and average[0]["mre_mm"] == pytest.approx(1.0)        # (4 - 2) / 2 from the truth
    assert sorted(info["best"]["folders"]) == sorted([coarse.name, fine.name]) and "best: average of" in out
    assert info["predict"][-1] == "nnLandmark_ensemble -i OUTPUT_FOLDER_1 OUTPUT_FOLDER_2 -o OUTPUT_FOLDER"
    assert any(f"-c 3d_fullres -tr {FINE} -p {CPU}" in c for c in info["predict"][:2])


def test_a_fine_stage_validated_on_the_whole_image_is_named_and_not_chosen(results, cv_errors, capsys):
    truth, errors = cv_errors
    fine = model(results, FINE, CPU, "3d_fullres", CASCADE, folds=(0,))
    single = model(results, SINGLE, CPU, "3d_fullres", CASCADE, folds=(0,))
    write_cv(fine, 0, {c: (1.0, 1.0) for c in errors}, truth)                        # no "stage": whole image
    write_cv(single, 0, {c: (3.0, 3.0) for c in errors}, truth)
    best_command.main(["-d", "700", "--no_ensembles"])
    out = capsys.readouterr().out
    assert "validated on the whole image, not within its coarse stage: run --val again" in out
    assert f"best: 3d_fullres ({SINGLE}, {CPU})" in out


def test_a_dataset_of_multi_instance_classes_only_is_ranked_by_instance_f1(results, nnunet_dirs, capsys, fails_with):
    """Two models of a contacts-only dataset (two contacts per case, 10 cases): one finds both within 0.5 mm, the
    other finds one 0.1 mm off and adds a false alarm 30 mm away: F1 1 vs 0.5, although the second's matched pairs
    lie closer."""
    labels = {"labels": {"background": 0, "contact": 1}, "multi_instance": ["contact"],
              "channel_names": {"0": "CT"}, "file_ending": ".nii.gz"}
    raw = nnunet_dirs / "nnUNet_raw" / "Dataset700_Sel"
    (raw / "dataset.json").write_text(json.dumps(labels))
    truth = {f"c{i:02d}": {"contact": [[0.0, 0.0, 0.0], [20.0, 0.0, 0.0]]} for i in range(10)}
    (raw / "all_instances_world.json").write_text(json.dumps({"coordinate_system": "LPS", **truth}))
    found = {"exact": lambda: [[0.5, 0, 0], [20.0, 0.5, 0]], "sloppy": lambda: [[0.1, 0, 0], [50.0, 0, 0]]}
    folders = {}
    for name, trainer in (("exact", FINE), ("sloppy", SINGLE)):
        folders[name] = model(results, trainer, CPU, "3d_fullres", CASCADE, folds=(0,))
        (folders[name] / "dataset.json").write_text(json.dumps(labels))
        (folders[name] / "instance_detection.json").write_text(json.dumps({"contact": {"threshold": 0.5,
                                                                                       "nms_mm": 2.0}}))
        for case in truth:
            instances = [{"world": p, "likelihood": 0.9} for p in found[name]()]
            (folders[name] / "fold_0" / "validation" / f"{case}.json").write_text(json.dumps(
                {"case": case, "image": case, "coordinate_system": "LPS", "landmarks": {},
                 "instances": {"contact": instances}}))
    best_command.main(["-d", "700"])
    out = capsys.readouterr().out
    info = json.loads((results / "Dataset700_Sel" / "inference_information.json").read_text())
    scores = {r["folders"][0]: (r["f1"], r["matched_mre_mm"], r["n_cases"]) for r in info["models"]}
    assert scores[folders["exact"].name] == (pytest.approx(1.0), pytest.approx(0.5), 10)
    assert scores[folders["sloppy"].name] == (pytest.approx(0.5), pytest.approx(0.1), 10)
    assert info["ranked_by"] == "f1" and info["best"]["folders"] == [folders["exact"].name]
    assert "best: cascade 3d_whole -> 3d_fullres" in out and "instance F1 1.000" in out
    assert info["predict"] == [f"nnLandmark_predict -d 700 -i INPUT_FOLDER -o OUTPUT_FOLDER -c 3d_fullres -tr {FINE} "
                               f"-p {CPU}"]
    for folder in folders.values():   # uncalibrated: every candidate would count
        (folder / "instance_detection.json").unlink()
    err = fails_with(best_command.main, ["-d", "700"])
    assert "no model of Dataset700_Sel has calibrated instance predictions" in err and "nnLandmark_calibrate -d 700" in err


def test_best_configuration_without_a_validated_fold_says_so(results, fails_with):
    model(results, FINE, CPU, "3d_fullres", CASCADE)                                  # trained, never validated
    err = fails_with(best_command.main, ["-d", "700"])
    assert "no trained model with a validated fold in" in err and "Dataset700_Sel" in err


def test_ensemble_averages_coordinates_and_votes_on_presence(tmp_path, capsys, fails_with):
    def write(folder, a, present=True, likelihood=0.5):
        folder.mkdir(exist_ok=True)
        entry = {"label": 1, "voxel": [a, 0.0, 0.0], "world": [2 * a, 0.0, 0.0], "likelihood": likelihood,
                 "present": present}
        (folder / "c1.json").write_text(json.dumps({"case": "c1", "image": "c1_0000.nii.gz",
                                                    "coordinate_system": "LPS", "landmarks": {"A": entry}}))
    write(tmp_path / "m1", 1.0, True, 0.9)
    write(tmp_path / "m2", 3.0, False, 0.1)
    ensemble_command.main(["-i", str(tmp_path / "m1"), str(tmp_path / "m2"), "-o", str(tmp_path / "out"),
                           "--format", "json,csv"])
    entry = json.loads((tmp_path / "out" / "c1.json").read_text())["landmarks"]["A"]
    assert entry["voxel"] == [2.0, 0.0, 0.0] and entry["world"] == [4.0, 0.0, 0.0]
    assert entry["likelihood"] == pytest.approx(0.5) and entry["present"] is True     # one of two: a tie is present
    assert (tmp_path / "out" / "c1.csv").is_file()
    err = fails_with(ensemble_command.main, ["-i", str(tmp_path / "m1"), str(tmp_path / "m1/"), "-o",
                                             str(tmp_path / "o2")])
    assert "at least two different prediction folders" in err
    write(tmp_path / "m2", 3.0, "no")
    err = fails_with(ensemble_command.main, ["-i", str(tmp_path / "m1"), str(tmp_path / "m2"), "-o",
                                             str(tmp_path / "o3")])
    assert "m2/c1.json: landmark 'A': \"present\" must be true or false, got 'no'" in err


# --- the default path, end to end ---------------------------------------------------------------------------------

@pytest.mark.slow
def test_the_default_cpu_path_names_no_trainer_and_predicts_a_cascade_in_one_command(tmp_path, cli):
    import os
    from nnlandmark.dataset_conversion.synthetic import make_synthetic_dataset
    env = {**os.environ, "nnUNet_n_proc_DA": "0"}   # planning and training with augmentation in-process
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        env[name] = str(tmp_path / name)
    raw = Path(make_synthetic_dataset(env["nnUNet_raw"], 701, "Path", n_train=5, n_test=2, size=32))
    out = cli("nnLandmark_plan_and_preprocess", env, "-d", 701, "-device", "cpu", "--cpu_whole_volume")
    assert "nnLandmarkCPUPlans: a cascade, because of --cpu_whole_volume" in out
    assert "train nnLandmark_train 701 3d_whole FOLD then nnLandmark_train 701 3d_fullres FOLD" in out
    plans_file = tmp_path / "nnUNet_preprocessed" / "Dataset701_Path" / f"{CPU}.json"
    plans = json.loads(plans_file.read_text())
    assert {c: plans["configurations"][c]["nnlandmark_trainer"] for c in CASCADE} == CASCADE
    assert [plans["configurations"][c]["nnlandmark_epochs"] for c in ("3d_whole", "3d_fullres")] == [5, 32]
    for configuration in CASCADE:     # the documented knob that trades time for accuracy: one epoch each here
        plans["configurations"][configuration]["nnlandmark_epochs"] = 1
    plans_file.write_text(json.dumps(plans))

    assert f"training {COARSE} on {CPU} 3d_whole" in cli("nnLandmark_train", env, 701, "3d_whole", 0, "-device",
                                                         "cpu")
    results = tmp_path / "nnUNet_results" / "Dataset701_Path"
    radii = json.loads((results / f"{COARSE}__{CPU}__3d_whole" / "search_radius.json").read_text())
    assert set(radii) == {"small_sphere", "medium_sphere", "large_sphere"} and min(radii.values()) > 0
    assert f"training {FINE} on {CPU} 3d_fullres" in cli("nnLandmark_train", env, 701, "3d_fullres", 0,
                                                          "-device", "cpu")
    fine = results / f"{FINE}__{CPU}__3d_fullres"
    import torch
    assert torch.load(fine / "fold_0" / "checkpoint_final.pth", weights_only=False)["current_epoch"] == 1
    validated = [json.loads(p.read_text()) for p in (fine / "fold_0" / "validation").glob("sphere_*.json")]
    assert validated and all(e["stage"] in ("fine", "coarse") for v in validated for e in v["landmarks"].values())

    out = cli("nnLandmark_predict", env, "-i", raw / "imagesTs", "-o", tmp_path / "pred", "-d", 701, "-device", "cpu",
              "--disable_tqdm")
    assert "search radius" in out and "from the coarse stage's cross-validation" in out and fine.name in out
    coarse = {p.stem: json.loads(p.read_text()) for p in (tmp_path / "pred" / "3d_whole").glob("*.json")}
    final = {p.stem: json.loads(p.read_text()) for p in (tmp_path / "pred").glob("*.json")}
    assert sorted(coarse) == sorted(final) == ["sphere_005", "sphere_006"]
    for case, prediction in final.items():
        for name, entry in prediction["landmarks"].items():
            prior = np.array(coarse[case]["landmarks"][name]["world"])
            assert np.linalg.norm(np.array(entry["world"]) - prior) <= radii[name] + 1e-6   # read within its ball
            assert entry["stage"] == "fine" or entry["world"] == pytest.approx(prior.tolist())

    out = cli("nnLandmark_find_best_configuration", env, "-d", 701)
    info = json.loads((results / "inference_information.json").read_text())
    assert {r["model"] for r in info["models"]} >= {f"3d_whole ({COARSE}, {CPU})",
                                                    f"cascade 3d_whole -> 3d_fullres ({FINE}, {CPU})"}
    assert "predict with:" in out and all(c.startswith("nnLandmark_") for c in info["predict"])
