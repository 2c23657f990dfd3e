"""Small helpers shared by the benchmark scripts: markdown tables, JSON results, timing on CPU or CUDA."""
import contextlib
import json
import os
import platform
import subprocess
import sys
import time
from datetime import date
from os.path import abspath, basename, dirname, join
from pathlib import Path

RESULTS = join(dirname(abspath(__file__)), 'results')


def default_out(script: str) -> str:
    return join(RESULTS, basename(script).replace('.py', '.json'))


def environment(device: str) -> dict:
    import torch
    name = torch.cuda.get_device_name() if device.startswith('cuda') else platform.processor() or platform.machine()
    return {'date': date.today().isoformat(), 'device': device, 'device_name': name, 'cpu_cores': os.cpu_count(),
            'torch': torch.__version__, 'torch_threads': torch.get_num_threads(), 'python': platform.python_version()}


def write_json(path: str, data: dict) -> None:
    os.makedirs(dirname(abspath(path)), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(data, f, indent=2)


def markdown_table(headers, rows) -> str:
    lines = ['| ' + ' | '.join(headers) + ' |', '|' + '|'.join('---' for _ in headers) + '|']
    lines += ['| ' + ' | '.join(str(c) for c in row) + ' |' for row in rows]
    return '\n'.join(lines)


def sync(device) -> None:
    import torch
    if str(device).startswith('cuda'):
        torch.cuda.synchronize()


def timed(fn, device) -> float:
    """Seconds for one call of ``fn()``, with the device synchronised before and after."""
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


@contextlib.contextmanager
def stdout_to_stderr():
    """Send everything written to stdout (also by nnU-Net's spawned worker processes) to stderr, so that stdout
    holds only the result tables."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def run_command(env: dict, command: str, *args) -> str:
    """One of our console scripts from this interpreter's environment; its output ends the run if it fails."""
    bin_dir = os.path.dirname(sys.executable)
    result = subprocess.run([join(bin_dir, command), *map(str, args)], env=env, capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"{command} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return result.stdout


CPU_PLANS = "nnLandmarkCPUPlans"


def train_cpu(env: dict, raw, trainer: str, configuration: str = "3d_fullres", device: str = "cpu"):
    """Train fold 0 of the raw dataset folder ``raw`` with the CPU plans (on CPU unless told); its fold folder."""
    run_command(env, "nnLandmark_train", Path(raw).name, configuration, 0, "-tr", trainer, "-p", CPU_PLANS,
                "-device", device)
    return fold_folder(env, raw, trainer, configuration)


def fold_folder(env: dict, raw, trainer: str, configuration: str = "3d_fullres"):
    return Path(env["nnUNet_results"]) / Path(raw).name / f"{trainer}__{CPU_PLANS}__{configuration}" / "fold_0"


def epoch_seconds(fold):
    """Seconds of each epoch of a finished training, from its final checkpoint's log."""
    import numpy as np
    import torch
    logging = torch.load(join(fold, "checkpoint_final.pth"), map_location="cpu", weights_only=False)["logging"]
    return np.subtract(logging["epoch_end_timestamps"], logging["epoch_start_timestamps"])


def predict_test_cases(env: dict, raw, trainer: str, out, *extra, configuration: str = "3d_fullres",
                       device: str = "cpu") -> dict:
    """Predict the raw dataset's imagesTs (on CPU unless told) and evaluate against its world landmarks; the summary."""
    raw = Path(raw)
    run_command(env, "nnLandmark_predict", "-i", raw / "imagesTs", "-o", out, "-d", raw.name, "-tr", trainer,
                "-p", CPU_PLANS, "-c", configuration, "-device", device, "--disable_tqdm", *extra)
    run_command(env, "nnLandmark_evaluate", "-pred", out, "-gt", raw / "all_landmarks_world.json")
    return json.loads((Path(out) / "evaluation" / "summary.json").read_text())
