"""Commands end in one line, never a traceback: on Ctrl-C / SIGTERM, after a progress bar, on bad options, output
folders, nnU-Net folders, dataset.json files and configurations; and a shared checkpoint cannot run code."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from batchgenerators.utilities.file_and_folder_operations import save_json

from nnlandmark.commands import demo, plan_and_preprocess, predict, train
from nnlandmark.dataset_conversion.synthetic import make_synthetic_dataset
from nnlandmark.network import load_checkpoint

BIN = Path(sys.executable).parent
MODEL = "nnLandmarkTrainer__nnUNetPlans__3d_fullres"
LANDMARKS = {"small_sphere", "medium_sphere", "large_sphere"}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A planned 32^3 synthetic dataset and a model folder whose checkpoints nnLandmarkTrainer wrote itself after one
    (faked) epoch of logging: nnU-Net's log then holds numpy scalars, as in every real checkpoint. No training."""
    from nnlandmark.planning import plan_and_preprocess as plan
    from nnlandmark.trainers.run import build_trainer
    root = tmp_path_factory.mktemp("commands")
    with pytest.MonkeyPatch.context() as env:
        for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
            (root / name).mkdir()
            env.setenv(name, str(root / name))
        raw = Path(make_synthetic_dataset(str(root / "nnUNet_raw"), 996, "Cmd", n_train=3, n_test=1, size=32))
        plan(996, ("3d_fullres",), num_processes=1)
        cases = [f"sphere_{i:03d}" for i in range(3)]   # three cases: nnU-Net's five folds would not fit
        save_json([{"train": [c for c in cases if c != val], "val": [val]} for val in cases],
                  str(root / "nnUNet_preprocessed" / "Dataset996_Cmd" / "splits_final.json"))
        env.setenv("nnUNet_n_proc_DA", "0")
        trainer = build_trainer(996, "3d_fullres", 0, "nnLandmarkTrainer", "nnUNetPlans", False, torch.device("cpu"))
        trainer.initialize()
        trainer.logger.log("epoch_start_timestamps", time.time(), 0)
        trainer.on_train_epoch_end([{"loss": np.float32(0.7)}])
        trainer.on_validation_epoch_end([{"loss": np.float32(0.6), "error_sum": np.array([3.0, 2.0, 1.0]),
                                          "error_count": np.array([1, 1, 1])}])
        trainer.on_epoch_end()                                       # writes checkpoint_best.pth
        trainer.save_checkpoint(os.path.join(trainer.output_folder, "checkpoint_final.pth"))
        save_json(trainer.plans_manager.plans, os.path.join(trainer.output_folder_base, "plans.json"), sort_keys=False)
        shutil.copy(raw / "dataset.json", trainer.output_folder_base)
    return root, raw


@pytest.fixture
def model_env(tiny_model, monkeypatch, tmp_path):
    """The tiny model's nnU-Net folders, with a private copy of nnUNet_results to break; returns (model folder, raw
    dataset, environment for console scripts)."""
    root, raw = tiny_model
    results = tmp_path / "results"
    shutil.copytree(root / "nnUNet_results", results)
    env = {**os.environ, "nnUNet_raw": str(root / "nnUNet_raw"), "nnUNet_preprocessed": str(root / "nnUNet_preprocessed"),
           "nnUNet_results": str(results)}
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.setenv(name, env[name])
    return results / "Dataset996_Cmd" / MODEL, raw, env


def predict_args(inputs, out, *extra):
    return ["-i", str(inputs), "-o", str(out), "-d", "996", "-device", "cpu", "--disable_tqdm", *extra]


def last_rendered_line(stderr: str) -> str:
    """The last line as a terminal shows it: text after a '\\r' overwrites the start of the line."""
    screen = ""
    for part in stderr.rstrip("\n").split("\n")[-1].split("\r"):
        screen = part + screen[len(part):]
    return screen.rstrip()


# --- checkpoints: weights and numbers only, unless the user trusts the file ---------------------------------------

class RunsCode:
    """Unpickling this object calls open(marker, 'w'): a stand-in for any code a crafted checkpoint could run."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def test_every_checkpoint_the_trainer_writes_loads_and_predicts_without_trust(model_env, tmp_path, capsys):
    model, raw, _ = model_env
    for name in ("checkpoint_best.pth", "checkpoint_final.pth"):
        path = model / "fold_0" / name
        assert torch.serialization.get_unsafe_globals_in_checkpoint(str(path))   # numpy scalars: the allow-list counts
        checkpoint = load_checkpoint(str(path))
        assert checkpoint["trainer_name"] == "nnLandmarkTrainer" and checkpoint["_best_ema"] == pytest.approx(6 / 3)
        assert checkpoint["logging"]["train_losses"] == [pytest.approx(0.7)]
    predict.main(predict_args(raw / "imagesTs", tmp_path / "out", "-chk", "checkpoint_best.pth"))
    written = list((tmp_path / "out").glob("*.json"))
    assert len(written) == 1 and set(json.loads(written[0].read_text())["landmarks"]) == LANDMARKS


def test_a_checkpoint_that_would_run_code_is_refused_unless_trusted(model_env, tmp_path, fails_with):
    model, raw, _ = model_env
    path = model / "fold_0" / "checkpoint_final.pth"
    marker = tmp_path / "code_ran"
    torch.save({**torch.load(path, weights_only=False), "payload": RunsCode(marker)}, path)
    err = fails_with(predict.main, predict_args(raw / "imagesTs", tmp_path / "out"))
    assert f"checkpoint {path} holds io.open, not only weights and numbers" in err and "--trust_checkpoint" in err
    assert not marker.exists() and not list((tmp_path / "out").glob("*.json"))
    predict.main(predict_args(raw / "imagesTs", tmp_path / "out", "--trust_checkpoint"))
    assert marker.exists() and len(list((tmp_path / "out").glob("*.json"))) == 1


@pytest.mark.parametrize("flag, checkpoint", [("--val", "checkpoint_final.pth"), ("--c", "checkpoint_latest.pth")])
def test_training_resumes_and_validates_only_from_checkpoints_that_cannot_run_code(model_env, tmp_path, fails_with,
                                                                                    flag, checkpoint):
    model, _, _ = model_env
    final = model / "fold_0" / "checkpoint_final.pth"
    marker = tmp_path / "code_ran"
    crafted = {**torch.load(final, weights_only=False), "payload": RunsCode(marker)}
    if flag == "--c":
        final.unlink()            # --c resumes from checkpoint_latest.pth when the fold has not finished
    torch.save(crafted, model / "fold_0" / checkpoint)
    err = fails_with(train.main, ["996", "3d_fullres", "0", flag, "-device", "cpu"])
    assert f"checkpoint {model / 'fold_0' / checkpoint} holds io.open, not only weights and numbers" in err
    assert "--trust_checkpoint" in err and not marker.exists()
    if flag == "--val":           # trusted, the same file is read (and its payload runs) and the fold validated
        train.main(["996", "3d_fullres", "0", flag, "-device", "cpu", "--trust_checkpoint"])
        assert marker.exists() and list((model / "fold_0" / "validation").glob("sphere_*.json"))


def test_fewer_training_cases_than_folds_is_refused_before_training(model_env, fails_with):
    splits = Path(os.environ["nnUNet_preprocessed"]) / "Dataset996_Cmd" / "splits_final.json"
    kept = splits.read_text()
    splits.unlink()
    try:
        err = fails_with(train.main, ["996", "3d_fullres", "0", "-device", "cpu"])
    finally:
        splits.write_text(kept)
    assert "Dataset996_Cmd has 3 training case(s); nnU-Net's 5-fold cross-validation needs 5" in err
    assert "fold 'all'" in err and "--folds K (K <= 3)" in err


# --- interruption and progress bars ---------------------------------------------------------------------------------

@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_prediction_says_so_in_one_line_and_keeps_only_whole_files(model_env, tmp_path, signum, code,
                                                                                 sigint_reaches_children):
    model, raw, env = model_env
    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    for copy in range(40):
        shutil.copy(raw / "imagesTs" / "sphere_003_0000.nii.gz", inputs / f"copy{copy:02d}_0000.nii.gz")
    process = subprocess.Popen([str(BIN / "nnLandmark_predict"), *predict_args(inputs, out)],
                               env={**env, "PYTHONFAULTHANDLER": "1"},   # SIGABRT dumps every thread's stack
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not (out.is_dir() and list(out.glob("*.json"))):
        assert process.poll() is None and time.time() < deadline, process.stderr.read()[-2000:]
        time.sleep(0.02)
    process.send_signal(signum)
    try:
        stderr = process.communicate(timeout=120)[1]
    except subprocess.TimeoutExpired:   # once in a full suite run (2026-12-02): show where it hangs
        process.send_signal(signal.SIGABRT)
        pytest.fail(f"no exit 120 s after the signal; its threads:\n{process.communicate(timeout=30)[1][-6000:]}")
    assert process.returncode == code, stderr[-2000:]
    assert "Traceback" not in stderr
    assert last_rendered_line(stderr) == ("interrupted: the cases already written are complete; run again with "
                                          "--continue_prediction to skip them")
    files = sorted(out.iterdir())
    assert 1 <= len(files) < 40 and all(f.suffix == ".json" for f in files)   # no temporary file left
    assert all(set(json.loads(f.read_text())["landmarks"]) == LANDMARKS for f in files)


def _raw_dataset(root, cases, shape=(16, 16, 16)):
    """Dataset042_Bad with one 3x3x3 cube per landmark; ``cases`` {case: number of cubes of landmark 1}."""
    folder = root / "Dataset042_Bad"
    (folder / "labelsTr").mkdir(parents=True)
    (folder / "imagesTr").mkdir()
    (folder / "dataset.json").write_text(json.dumps({**GOOD, "numTraining": len(cases)}))
    for case, cubes in cases.items():
        seg = np.zeros(shape, np.uint8)
        depth = slice(0, 1) if shape[0] == 1 else slice(1, 4)
        seg[depth, 1:4, 1:4] = 1
        if cubes == 2:
            seg[depth, 10:13, 10:13] = 1
        sitk.WriteImage(sitk.GetImageFromArray(seg), str(folder / "labelsTr" / f"{case}.nii.gz"))
        sitk.WriteImage(sitk.GetImageFromArray(seg.astype(np.float32)), str(folder / "imagesTr" / f"{case}_0000.nii.gz"))
    return folder


def test_an_error_after_an_open_progress_bar_starts_its_own_line(nnunet_dirs, capsys):
    _raw_dataset(nnunet_dirs / "nnUNet_raw", {"case_a": 1, "case_b": 2})   # the label-map check fails at case 2 of 2
    with pytest.raises(SystemExit) as exit_info:
        plan_and_preprocess.main(["-d", "42"])
    stderr = capsys.readouterr().err
    assert exit_info.value.code == 2 and "checking landmark label maps" in stderr  # the bar was drawn
    assert last_rendered_line(stderr).startswith("error: ") and "case_b.nii.gz" in last_rendered_line(stderr)


def test_a_progress_bar_still_open_at_the_error_is_ended_before_the_error_line(capsys):
    """A bar that a frame of the traceback still holds (a ``bar = tqdm(total=...)`` updated by hand, as nnU-Net's
    preprocessing does) is not closed by the exception; the command closes it, so that 'error:' starts a line."""
    from tqdm import tqdm
    from nnlandmark.commands._cli import user_errors_as_one_line
    from nnlandmark.errors import LandmarkError

    @user_errors_as_one_line
    def main(argv=None):
        bar = tqdm(total=2, desc="preprocessing")
        bar.update(1)
        raise LandmarkError("case 2 is broken")

    with pytest.raises(SystemExit) as exit_info:
        main([])
    stderr = capsys.readouterr().err
    assert exit_info.value.code == 2 and "preprocessing:" in stderr
    assert last_rendered_line(stderr) == "error: case 2 is broken"


# --- options --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("main, argv, message", [
    (plan_and_preprocess.main, ["-d", "42", "-np", "0"], "argument -np: must be a positive integer, got '0'"),
    (plan_and_preprocess.main, ["-d", "42", "-np", "-3"], "argument -np: must be a positive integer, got '-3'"),
    (plan_and_preprocess.main, ["-d", "42", "-c", "3d_lowres", "--cpu_plans"], "the CPU plans train on the preprocessed data of 3d_fullres"),
    (predict.main, ["-i", "x", "-o", "y", "-d", "1", "-step_size", "0"], "argument -step_size: must be a number in "
                                                                        "(0, 1], got '0'"),
    (predict.main, ["-i", "x", "-o", "y", "-d", "1", "-step_size", "1.5"], "argument -step_size: must be a number in "
                                                                          "(0, 1], got '1.5'"),
    (predict.main, ["-i", "x", "-o", "y", "-d", "1", "--search_radius", "-2"], "argument --search_radius: must be a "
                                                                              "positive number, got '-2'"),
    (train.main, ["1", "3d_fullres", "0", "-num_gpus", "0"], "argument -num_gpus: must be a positive integer"),
])
def test_out_of_range_options_are_parser_errors_naming_the_option(main, argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    stderr = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in stderr.splitlines()[-1] and "Traceback" not in stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="the message of a machine without a CUDA GPU")
def test_predict_on_cuda_without_a_gpu_is_named(model_env, tmp_path, fails_with):
    _, raw, _ = model_env
    err = fails_with(predict.main, predict_args(raw / "imagesTs", tmp_path / "out")[:-3] + ["-device", "cuda"])
    assert "-device cuda requested but no CUDA GPU is available; use -device cpu" in err


# --- output folders and nnU-Net folders -----------------------------------------------------------------------------

def test_an_output_folder_that_is_a_file_or_cannot_be_created_is_named_before_predicting(model_env, tmp_path,
                                                                                         fails_with):
    _, raw, _ = model_env
    a_file = tmp_path / "predictions"
    a_file.write_text("not a folder")
    err = fails_with(predict.main, predict_args(raw / "imagesTs", a_file))
    assert err == f"error: output folder -o {a_file} is a file, not a folder: choose a folder"
    err = fails_with(predict.main, predict_args(raw / "imagesTs", a_file / "inside"))
    assert f"output folder -o {a_file / 'inside'} cannot be created: {a_file} is a file" in err
    assert a_file.read_text() == "not a folder"


def test_a_read_only_output_folder_is_named(model_env, unwritable_folder, fails_with):
    _, raw, _ = model_env
    err = fails_with(predict.main, predict_args(raw / "imagesTs", unwritable_folder))
    assert f"output folder -o {unwritable_folder} is not writable" in err


def test_demo_workdir_under_a_file_is_named(tmp_path, fails_with):
    (tmp_path / "file").write_text("x")
    err = fails_with(demo.main, ["--workdir", str(tmp_path / "file" / "demo")])
    assert f"--workdir {tmp_path / 'file' / 'demo'} cannot be created: {tmp_path / 'file'} is a file" in err


@pytest.mark.parametrize("variable, main, argv", [
    ("nnUNet_results", train.main, ["42", "3d_fullres", "0", "-device", "cpu"]),
    ("nnUNet_preprocessed", plan_and_preprocess.main, ["-d", "42"]),
    ("nnUNet_raw", plan_and_preprocess.main, ["-d", "42"]),
])
def test_an_nnunet_folder_that_is_a_file_is_named(nnunet_dirs, monkeypatch, variable, main, argv, fails_with):
    a_file = nnunet_dirs / "a_file"
    a_file.write_text("x")
    monkeypatch.setenv(variable, str(a_file))
    err = fails_with(main, argv)
    assert err == f"error: {variable}={a_file} is a file, not a folder: export {variable}=/path/to/a/folder"


# --- dataset.json ---------------------------------------------------------------------------------------------------

GOOD = {"channel_names": {"0": "x"}, "labels": {"background": 0, "nasion": 1}, "numTraining": 1,
        "file_ending": ".nii.gz"}


@pytest.mark.parametrize("content, message", [
    ('{"labels": {"background": 0, "nasion": 1},}', "is not readable JSON (JSONDecodeError: "),
    ({k: v for k, v in GOOD.items() if k != "labels"}, ": no 'labels' mapping"),
    ({k: v for k, v in GOOD.items() if k != "file_ending"}, ": 'file_ending' must name the image files' extension"),
    ({**GOOD, "labels": {"background": 0, "nasion": [1, 2]}, "regions_class_order": [1]},
     ": label 'nasion' is a region [1, 2] (nnU-Net region-based training)"),
    ({k: v for k, v in GOOD.items() if k != "channel_names"}, ": 'channel_names' must name each image channel"),
    ({**GOOD, "channel_names": {"0": "T1", "1": "T2"}}, ": 'channel_names' declares 2 channel(s), but case 'case_a' "
                                                       "has 1 image file(s) in imagesTr"),
])
def test_a_broken_dataset_json_is_named_with_its_key_by_planning(nnunet_dirs, content, message, fails_with):
    folder = _raw_dataset(nnunet_dirs / "nnUNet_raw", {"case_a": 1})
    (folder / "dataset.json").write_text(content if isinstance(content, str) else json.dumps(content))
    err = fails_with(plan_and_preprocess.main, ["-d", "42"])
    assert err.startswith(f"error: {folder / 'dataset.json'}") and message in err
    assert not (nnunet_dirs / "nnUNet_preprocessed" / "Dataset042_Bad").exists()


def test_a_broken_dataset_json_is_named_by_prediction(model_env, tmp_path, fails_with):
    model, raw, _ = model_env
    (model / "dataset.json").write_text(json.dumps({**GOOD, "labels": {"background": 0, "a": [1, 2]}}))
    err = fails_with(predict.main, predict_args(raw / "imagesTs", tmp_path / "out"))
    assert f"{model / 'dataset.json'}: label 'a' is a region [1, 2]" in err


# --- configurations -------------------------------------------------------------------------------------------------

def test_a_configuration_the_plans_lack_or_a_2d_one_is_refused_before_preprocessing(model_env, fails_with):
    err = fails_with(plan_and_preprocess.main, ["-d", "996", "-np", "1", "-c", "3d_fulres"])
    assert err == ("error: unknown configuration '3d_fulres' (-c); the plans nnUNetPlans of Dataset996_Cmd have: "
                   "2d, 3d_fullres")
    err = fails_with(plan_and_preprocess.main, ["-d", "996", "-np", "1", "-c", "2d"])
    assert err == "error: configuration '2d' (-c) is 2D; nnlandmark needs a 3D one: 3d_fullres"
    assert not (Path(os.environ["nnUNet_preprocessed"]) / "Dataset996_Cmd" / "nnUNetPlans_2d").exists()


@pytest.mark.slow  # plans a dataset
def test_single_slice_images_plan_the_2d_configuration_and_refuse_a_3d_stage(nnunet_dirs, fails_with, capsys):
    _raw_dataset(nnunet_dirs / "nnUNet_raw", {"case_a": 1, "case_b": 1}, shape=(1, 16, 16))
    err = fails_with(plan_and_preprocess.main, ["-d", "42", "-np", "1", "-device", "cpu", "--cpu_whole_volume"])
    assert err == ("error: --cpu_whole_volume adds the 3D stage 3d_whole; 2D images get their coarse stage 2d_whole "
                   "where they exceed 256 pixels")
    plan_and_preprocess.main(["-d", "42", "-np", "1", "-device", "cpu"])
    assert "Dataset 42: train nnLandmark_train 42 2d FOLD" in capsys.readouterr().out
    plans_file = nnunet_dirs / "nnUNet_preprocessed" / "Dataset042_Bad" / "nnLandmarkCPUPlans.json"
    plans = json.loads(plans_file.read_text())
    assert list(plans["configurations"]) == ["2d"] and plans["configurations"]["2d"]["patch_size"] == [32, 32]


def test_training_a_configuration_that_was_not_preprocessed_is_named(model_env, fails_with):
    err = fails_with(train.main, ["996", "2d", "0", "-device", "cpu"])
    assert err.endswith("nnUNetPlans_2d not found: configuration '2d' was planned but not preprocessed; run "
                        "nnLandmark_plan_and_preprocess -d 996 -c 2d")


# --- nnUNetv2's options, same names and meanings ----------------------------------------------------------------------

def test_predict_splits_a_cohort_into_parts_and_takes_files(model_env, tmp_path):
    _, raw, _ = model_env
    inputs = tmp_path / "in"
    inputs.mkdir()
    for copy in range(5):
        shutil.copy(raw / "imagesTs" / "sphere_003_0000.nii.gz", inputs / f"c{copy}_0000.nii.gz")
    for part in (0, 1):
        predict.main(predict_args(inputs, tmp_path / f"part{part}", "-num_parts", "2", "-part_id", str(part),
                                  "-npp", "2", "-nps", "2"))
    assert sorted(p.stem for p in (tmp_path / "part0").glob("c*.json")) == ["c0", "c2", "c4"]
    assert sorted(p.stem for p in (tmp_path / "part1").glob("c*.json")) == ["c1", "c3"]
    files = tmp_path / "files"
    predict.main(["-i", str(inputs / "c1_0000.nii.gz"), str(raw / "imagesTs" / "sphere_003_0000.nii.gz"), "-o",
                  str(files), "-d", "996", "-device", "cpu", "--disable_tqdm", "-npp", "0"])
    assert sorted(p.stem for p in files.glob("*.json")) == ["c1", "sphere_003"]   # one case per file
    same = [json.loads((folder / "c1.json").read_text())["landmarks"] for folder in (files, tmp_path / "part1")]
    assert same[0] == same[1]            # background preprocessing changes nothing


@pytest.mark.parametrize("argv, message", [
    (["-num_parts", "2", "-part_id", "2"], "-part_id must lie in 0..1 for -num_parts 2"),
    (["-device", "mps"], "-device mps requested but no Apple MPS device is available; use -device cpu"),
])
def test_predict_part_and_device_mistakes_are_one_line(model_env, tmp_path, fails_with, argv, message):
    _, raw, _ = model_env
    args = predict_args(raw / "imagesTs", tmp_path / "out")
    args[args.index("-device"):args.index("-device") + 2] = []
    assert message in fails_with(predict.main, args + argv)


@pytest.mark.parametrize("value", ["two", "-1", ""])
def test_a_mistyped_augmentation_process_count_is_named_before_training(model_env, monkeypatch, fails_with, value):
    monkeypatch.setenv("nnUNet_n_proc_DA", value)
    err = fails_with(train.main, ["996", "3d_fullres", "0", "-device", "cpu"])
    assert f"nnUNet_n_proc_DA={value!r} is not a whole number >= 0" in err


def test_a_list_of_input_files_is_checked_like_a_folder(model_env, tmp_path, fails_with):
    _, raw, _ = model_env
    image = raw / "imagesTs" / "sphere_003_0000.nii.gz"
    shutil.copy(image, tmp_path / "sphere_003.nii.gz")
    err = fails_with(predict.main, ["-i", str(image), str(tmp_path / "sphere_003.nii.gz"), "-o", str(tmp_path / "o"),
                                    "-d", "996", "-device", "cpu"])
    assert "are both case 'sphere_003'" in err
    err = fails_with(predict.main, ["-i", str(image), str(tmp_path / "nowhere.nii.gz"), "-o", str(tmp_path / "o"),
                                    "-d", "996", "-device", "cpu"])
    assert f"input {tmp_path / 'nowhere.nii.gz'} does not exist" in err and not (tmp_path / "o").exists()


def test_training_from_pretrained_weights_without_checkpoints_exports_validation_heatmaps(model_env, capsys):
    model, _, _ = model_env
    pretrained = model / "fold_0" / "checkpoint_final.pth"
    train.main(["996", "3d_fullres", "1", "-tr", "nnLandmarkTrainer_tiny", "-p", "nnUNetPlans", "-device", "cpu",
                "-pretrained_weights", str(pretrained), "--npz", "--disable_checkpointing"])
    fold = model.parent / "nnLandmarkTrainer_tiny__nnUNetPlans__3d_fullres" / "fold_1"
    assert not list(fold.glob("*.pth"))
    exported = np.load(fold / "validation" / "sphere_001.npz")
    assert exported["heatmaps"].dtype == np.float16 and exported["heatmaps"].shape[0] == 3
    assert sorted(exported["landmarks"]) == sorted(LANDMARKS)
    assert f"Loading pretrained weights from file  {pretrained}" in capsys.readouterr().out   # nnU-Net's loader
    log = next(fold.glob("training_log_*.txt")).read_text()
    assert "No checkpoint written, checkpointing is disabled" in log


def test_pretrained_weights_of_another_network_or_that_run_code_are_refused(model_env, tmp_path, fails_with):
    model, _, _ = model_env
    checkpoint = torch.load(model / "fold_0" / "checkpoint_final.pth", weights_only=False)
    weights = checkpoint["network_weights"]
    first = next(k for k in weights if k.endswith(".weight") and ".seg_layers." not in k)
    weights[first] = torch.zeros(1)                          # an encoder layer of another shape
    torch.save(checkpoint, tmp_path / "other.pth")
    args = ["996", "3d_fullres", "1", "-tr", "nnLandmarkTrainer_tiny", "-p", "nnUNetPlans", "-device", "cpu"]
    err = fails_with(train.main, args + ["-pretrained_weights", str(tmp_path / "other.pth")])
    assert f"-pretrained_weights {tmp_path / 'other.pth'} do not fit this network" in err and first in err
    marker = tmp_path / "code_ran"
    torch.save({**checkpoint, "payload": RunsCode(marker)}, tmp_path / "evil.pth")
    err = fails_with(train.main, args + ["-pretrained_weights", str(tmp_path / "evil.pth")])
    assert "holds io.open, not only weights and numbers" in err and not marker.exists()
