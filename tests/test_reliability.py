"""Interrupted work resumes, broken models and inputs get one clear line, and predictions are reproducible."""
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

from nnlandmark.commands import predict
from nnlandmark.errors import LandmarkError

MODEL = "nnLandmarkTrainer_CPU__nnLandmarkCPUPlans__3d_fullres"


def start(command, env, *args):
    return subprocess.Popen([str(Path(sys.executable).parent / command), *map(str, args)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)


def kill_when(process, condition, timeout=300):
    """SIGKILL the command and its workers as soon as ``condition()`` holds; fail if it ends before that."""
    deadline = time.time() + timeout
    while not condition():
        assert process.poll() is None, f"ended before it could be interrupted: {process.stderr.read()[-2000:]}"
        assert time.time() < deadline, "timed out waiting to interrupt"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def test_killed_training_continues_from_its_last_checkpoint_with_c(trained, cli):
    root, _, env = trained
    fold = root / "results" / "Dataset991_E2E" / "nnLandmarkTrainer_CPU_4epochs__nnLandmarkCPUPlans__3d_fullres" / "fold_1"
    args = (991, "3d_fullres", 1, "-tr", "nnLandmarkTrainer_CPU_4epochs", "-p", "nnLandmarkCPUPlans", "-device", "cpu")
    kill_when(start("nnLandmark_train", env, *args), lambda: (fold / "checkpoint_latest.pth").is_file())
    assert not (fold / "checkpoint_final.pth").exists()
    interrupted_at = torch.load(fold / "checkpoint_latest.pth", weights_only=False)["current_epoch"]
    assert 1 <= interrupted_at < 4
    first_logs = set(fold.glob("training_log_*.txt"))
    time.sleep(1.1)  # nnU-Net names its log by the second
    cli("nnLandmark_train", env, *args, "--c")
    final = torch.load(fold / "checkpoint_final.pth", weights_only=False)
    assert final["current_epoch"] == 4
    resumed_log = (set(fold.glob("training_log_*.txt")) - first_logs).pop().read_text()
    epochs = [int(line.split("Epoch ")[1]) for line in resumed_log.splitlines() if "Epoch " in line
              and line.split("Epoch ")[1].strip().isdigit()]
    assert epochs[0] == interrupted_at and epochs[-1] == 3  # continued, did not start again at epoch 0
    ema = final["logging"]["ema_val_landmark_error_vox"]        # the whole run's log, restored across --c
    best = torch.load(fold / "checkpoint_best.pth", weights_only=False)
    assert len(ema) == 4 and best["_best_ema"] == min(ema) and best["current_epoch"] == int(np.argmin(ema)) + 1
    assert (fold / "validation" / "summary.json").is_file()


def test_killed_prediction_never_leaves_a_truncated_json_and_continues(trained, tmp_path, cli):
    root, raw, env = trained
    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    for copy in range(3):  # 12 cases, so that the kill lands mid-folder
        for image in (raw / "imagesTs").glob("*_0000.nii.gz"):
            shutil.copy(image, inputs / image.name.replace("sphere_", f"copy{copy}_"))
    args = ("-i", inputs, "-o", out, "-d", 991, "-tr", "nnLandmarkTrainer_CPU", "-p", "nnLandmarkCPUPlans",
            "-device", "cpu", "--disable_tqdm")
    kill_when(start("nnLandmark_predict", env, *args), lambda: out.is_dir() and len(list(out.glob("*.json"))) >= 2)
    finished = {p: p.stat().st_mtime_ns for p in out.glob("*.json")}
    assert 2 <= len(finished) < 12
    for path in finished:
        assert set(json.loads(path.read_text())["landmarks"]) == {"small_sphere", "medium_sphere", "large_sphere"}
    cli("nnLandmark_predict", env, *args, "--continue_prediction")
    assert len(list(out.glob("*.json"))) == 12
    assert all(path.stat().st_mtime_ns == mtime for path, mtime in finished.items())  # skipped, not redone


def test_same_model_and_image_give_the_same_json(trained, tmp_path, cli):
    root, raw, env = trained
    for target in ("a", "b"):
        cli("nnLandmark_predict", env, "-i", raw / "imagesTs", "-o", tmp_path / target, "-d", 991, "-tr",
            "nnLandmarkTrainer_CPU", "-p", "nnLandmarkCPUPlans", "-device", "cpu", "--disable_tqdm")
    for file in (tmp_path / "a").glob("*.json"):
        assert file.read_bytes() == (tmp_path / "b" / file.name).read_bytes()


@pytest.fixture
def model_copy(trained, tmp_path, monkeypatch):
    """A private copy of the trained model folder to break, and the environment pointing at it."""
    root, raw, env = trained
    results = tmp_path / "results"
    shutil.copytree(root / "results" / "Dataset991_E2E" / MODEL, results / "Dataset991_E2E" / MODEL)
    for variable in ("nnUNet_raw", "nnUNet_preprocessed"):
        monkeypatch.setenv(variable, env[variable])
    monkeypatch.setenv("nnUNet_results", str(results))
    return results / "Dataset991_E2E" / MODEL, raw


def predict_args(inputs, out, *extra):
    return ["-i", str(inputs), "-o", str(out), "-d", "991", "-tr", "nnLandmarkTrainer_CPU", "-p", "nnLandmarkCPUPlans",
            "-device", "cpu", "--disable_tqdm", *extra]


def truncate(model):
    checkpoint = model / "fold_0" / "checkpoint_final.pth"
    checkpoint.write_bytes(checkpoint.read_bytes()[:5000])
    return f"checkpoint {checkpoint} cannot be read (", None


def segmentation_trainer(model):
    checkpoint = model / "fold_0" / "checkpoint_final.pth"
    content = torch.load(checkpoint, weights_only=False)
    content["trainer_name"] = "nnUNetTrainer"
    torch.save(content, checkpoint)
    return f"{checkpoint} was trained by 'nnUNetTrainer', not by an nnlandmark trainer", None


def untrained_fold(model):
    return f"checkpoint {model / 'fold_3' / 'checkpoint_final.pth'} not found: train this fold first", ["-f", "3"]


def two_channels(model):
    return "has 2 channel file(s), the model expects 1", "two channels"


def prior_without_the_case(model):
    prior = model.parent / "prior.json"
    prior.write_text('{"sphere_999": {"small_sphere": [0, 0, 0]}}')
    return "case 'sphere_020' has no prior positions (-prev_stage_predictions)", ["--search_around", str(prior)]


def empty_folder(model):
    return "no '*_0000.nii.gz' images in", "empty"


@pytest.mark.parametrize("spoil", [truncate, segmentation_trainer, untrained_fold, two_channels, empty_folder,
                                   prior_without_the_case])
def test_broken_models_and_inputs_fail_with_one_line(model_copy, tmp_path, spoil, fails_with):
    model, raw = model_copy
    message, extra = spoil(model)
    inputs = tmp_path / "in"
    inputs.mkdir()
    if extra != "empty":
        shutil.copy(raw / "imagesTs" / "sphere_020_0000.nii.gz", inputs)
    if extra == "two channels":
        shutil.copy(raw / "imagesTs" / "sphere_020_0000.nii.gz", inputs / "sphere_020_0001.nii.gz")
    err = fails_with(predict.main, predict_args(inputs, tmp_path / "out", *(extra if isinstance(extra, list) else [])))
    assert message in err
    assert not list((tmp_path / "out").glob("*.json"))


def test_validation_of_an_unfinished_fold_is_refused(model_copy, fails_with):
    from nnlandmark.commands import train
    err = fails_with(train.main, ["991", "3d_fullres", "2", "-tr", "nnLandmarkTrainer_CPU", "-p",
                                  "nnLandmarkCPUPlans", "-device", "cpu", "--val"])
    assert "fold_2: training of this fold has not finished, so --val cannot run" in err


def test_nan_image_is_refused_by_the_python_api(model_copy):
    from nnlandmark.inference.predictor import LandmarkPredictor
    model, raw = model_copy
    image = sitk.ReadImage(str(raw / "imagesTs" / "sphere_020_0000.nii.gz"))
    pixels = sitk.GetArrayFromImage(image)
    pixels[5, 5, 5] = np.nan
    broken = sitk.GetImageFromArray(pixels)
    broken.CopyInformation(image)
    predictor = LandmarkPredictor.from_model_folder(str(model), [0], device=torch.device("cpu"), allow_tqdm=False)
    with pytest.raises(LandmarkError, match="contains NaN or infinite values"):
        predictor.predict(broken)


def test_a_write_that_fails_leaves_neither_a_truncated_file_nor_its_temporary(tmp_path):
    from nnlandmark.io.atomic import write_text_atomic
    target = tmp_path / "case.json"
    target.write_text("previous prediction")
    with pytest.raises(TypeError):
        write_text_atomic(b"not text", str(target))   # fails inside the write, after the temporary file exists
    assert [p.name for p in tmp_path.iterdir()] == ["case.json"] and target.read_text() == "previous prediction"
    write_text_atomic("new", str(target))
    assert [p.name for p in tmp_path.iterdir()] == ["case.json"] and target.read_text() == "new"
