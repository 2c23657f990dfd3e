"""Shared fixtures: one CPU-trained synthetic model for the end-to-end and reliability tests (trained once)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nnlandmark.dataset_conversion.synthetic import make_synthetic_dataset

BIN = Path(sys.executable).parent


def run(command, env, *args):
    result = subprocess.run([str(BIN / command), *map(str, args)], env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    env = {**os.environ, "nnUNet_raw": str(root / "raw"), "nnUNet_preprocessed": str(root / "pre"),
           "nnUNet_results": str(root / "results"), "nnUNet_n_proc_DA": "1"}
    raw = Path(make_synthetic_dataset(env["nnUNet_raw"], 991, "E2E", n_train=20, n_test=4, seed=3))
    run("nnLandmark_plan_and_preprocess", env, "-d", 991, "--verify_dataset_integrity", "--cpu_plans")
    run("nnLandmark_train", env, 991, "3d_fullres", 0, "-tr", "nnLandmarkTrainer_CPU",
        "-p", "nnLandmarkCPUPlans", "-device", "cpu")
    return root, raw, env
