"""Shared fixtures (test modules import nothing from each other): console-script runners, fabricated inputs, nnU-Net
folders, a two-iteration trainer and one CPU-trained synthetic model for the end-to-end tests (trained once).

Tests that train a model are marked ``slow``: ``pytest -m "not slow"`` runs the rest in under a minute.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from nnlandmark.dataset_conversion.synthetic import make_synthetic_dataset
from nnlandmark.trainers.nnLandmarkTrainer import nnLandmarkTrainer

BIN = Path(sys.executable).parent


class nnLandmarkTrainer_tiny(nnLandmarkTrainer):
    """Two iterations, for tests of the wiring, not of learning (found by name like every nnLandmarkTrainer)."""
    epochs, iterations, val_iterations = 1, 2, 1


def pytest_collection_modifyitems(items):
    """Every test that uses the trained model, or the planned tiny model of test_command_reliability, is slow."""
    for item in items:
        if {"trained", "tiny_model"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def _run(command, env, *args):
    result = subprocess.run([str(BIN / command), *map(str, args)], env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.fixture(scope="session")
def cli():
    """``cli(command, env, *args)``: run a console script of this environment, assert exit 0, return its stdout."""
    return _run


def _set_epochs(plans_file, configuration: str, epochs: int) -> None:
    plans = json.loads(Path(plans_file).read_text())
    plans["configurations"][configuration]["nnlandmark_epochs"] = epochs
    Path(plans_file).write_text(json.dumps(plans))


def _mean_shape_mre(truth: dict, tests) -> float:
    names = list(truth[tests[0]])
    train = [c for c in truth if c not in tests and c != "coordinate_system"]
    mean = {n: np.mean([truth[c][n] for c in train], 0) for n in names}
    return float(np.mean([np.linalg.norm(np.subtract(truth[c][n], mean[n])) for c in tests for n in names]))


@pytest.fixture(scope="session")
def mean_shape_mre():
    """``mean_shape_mre(truth, tests)``: the floor of a world-landmark table's ``tests`` cases, every landmark at its
    mean over the other cases."""
    return _mean_shape_mre


@pytest.fixture
def sigint_reaches_children():
    """A suite started in the background by a non-interactive shell runs with SIGINT ignored, and the commands a test
    starts inherit that (a Python started so never raises KeyboardInterrupt): while a test interrupts a command, its
    children start with SIGINT's default again (a handler in this process is reset to the default on exec)."""
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        yield
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.fixture(scope="session")
def set_epochs():
    """``set_epochs(plans_file, configuration, epochs)``: the README's knob (``nnlandmark_epochs`` of a configuration
    of the CPU plans), for a short schedule."""
    return _set_epochs


@pytest.fixture
def fails_with(capsys):
    """``fails_with(main, argv)``: the command exits 2 with one 'error: ' line and no traceback; returns that line."""
    def check(main, argv):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
        stderr = capsys.readouterr().err
        err = stderr.replace("\r", "\n").strip().splitlines()[-1]  # progress bars may precede the error line
        assert err.startswith("error: ") and "Traceback" not in stderr
        return err
    return check


@pytest.fixture
def nnunet_dirs(tmp_path, monkeypatch):
    """nnUNet_raw / nnUNet_preprocessed / nnUNet_results made under tmp_path and set in the environment; returns
    tmp_path."""
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        (tmp_path / name).mkdir()
        monkeypatch.setenv(name, str(tmp_path / name))
    return tmp_path


@pytest.fixture
def unwritable_folder(tmp_path):
    """A folder this process cannot write into: a read-only one, or for root, who writes into any of those, a kernel
    folder (/sys/kernel)."""
    if os.geteuid() != 0:
        folder = tmp_path / "read_only"
        folder.mkdir(mode=0o555)
        yield folder
        folder.chmod(0o755)
        return
    try:
        tempfile.TemporaryFile(dir="/sys/kernel").close()
    except OSError:
        yield Path("/sys/kernel")
        return
    pytest.skip("no folder on this machine is read-only for root")


@pytest.fixture(scope="session")
def tiny_trainer():
    """The two-iteration trainer class (subclass it to try one hook)."""
    return nnLandmarkTrainer_tiny


@pytest.fixture(scope="session")
def write_prediction():
    """``write_prediction(folder, case, {name: world LPS xyz}, absent=names)``: a CASE.json as the predictor writes
    it, with the ``absent`` landmarks reported ``"present": false``."""
    def write(folder, case, points, absent=()):
        folder.mkdir(parents=True, exist_ok=True)
        landmarks = {name: {"label": i + 1, "voxel": [0, 0, 0], "world": list(map(float, xyz)), "likelihood": 0.9,
                            "present": name not in absent} for i, (name, xyz) in enumerate(points.items())}
        (folder / f"{case}.json").write_text(json.dumps(
            {"case": case, "image": f"{case}_0000.nii.gz", "coordinate_system": "LPS", "landmarks": landmarks}))
    return write


@pytest.fixture(scope="session")
def oblique_image():
    """``oblique_image()``: an empty 16 x 15 x 9 image, anisotropic, rotated and with y flipped."""
    def make():
        image = sitk.Image(16, 15, 9, sitk.sitkFloat32)
        image.SetSpacing((0.8, 1.1, 1.9))
        image.SetOrigin((12.5, -40.0, 7.25))
        rotation = np.array(sitk.VersorTransform((0.3, -0.2, 0.9), 0.7).GetMatrix()).reshape(3, 3)
        image.SetDirection((rotation @ np.diag([1.0, -1.0, 1.0])).ravel().tolist())
        return image
    return make


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    env = {**os.environ, "nnUNet_raw": str(root / "raw"), "nnUNet_preprocessed": str(root / "pre"),
           "nnUNet_results": str(root / "results"), "nnUNet_n_proc_DA": "1"}
    raw = Path(make_synthetic_dataset(env["nnUNet_raw"], 991, "E2E", n_train=20, n_test=4, seed=3))
    _run("nnLandmark_plan_and_preprocess", env, "-d", 991, "--verify_dataset_integrity", "--cpu_plans")
    _run("nnLandmark_train", env, 991, "3d_fullres", 0, "-tr", "nnLandmarkTrainer_CPU",
         "-p", "nnLandmarkCPUPlans", "-device", "cpu")
    return root, raw, env
