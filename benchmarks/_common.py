"""The harness every benchmark script shares: environment, data, train, predict, evaluate, JSON + markdown table.

- environment: ``nnunet_env`` (nnU-Net's three folders under a work folder, for our console scripts),
  ``use_nnunet_folders`` (the same in this process), ``training_env``, ``environment`` (what the JSON records);
- data: ``spheres`` (the demo's spheres), ``scene_dataset`` (scans drawn by benchmarks/_scenes.py), ``plan_cpu``,
  ``planned_spheres``, ``edit_json``, ``reference_mres`` (the no-image floors: mean shape, affine oracle);
- train: ``train_cpu``, ``fold_folder``, ``epoch_seconds``;
- predict + evaluate: ``predict_test_cases``;
- results: ``benchmark_parser``, ``add_device_option``, ``default_out``, ``markdown_table``, ``write_json``,
  ``write_results``; timing: ``timed``, ``stdout_to_stderr``.

``--device`` is added (``add_device_option``) only by the scripts that move their training or prediction there; the
others train and predict on CPU.
"""
import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import date
from os.path import abspath, basename, dirname, join
from pathlib import Path

import numpy as np

from nnlandmark.io.predictions import read_landmark_table
from nnlandmark.landmark_set import LANDMARKS_WORLD_JSON
from nnlandmark.paths import CPU_PLANS

RESULTS = join(dirname(abspath(__file__)), 'results')
NNUNET_FOLDERS = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")
DEVICES = ('cpu', 'cuda')


# ------------------------------------------------------------------------------------------------ results, CLI
def default_out(script: str) -> str:
    """benchmarks/results/NAME.json for a script path (NAME.py) or a plain name."""
    name = basename(script)
    return join(RESULTS, (name[:-len('.py')] if name.endswith('.py') else name) + '.json')


def benchmark_parser(doc: str, out=None, workdir=None) -> argparse.ArgumentParser:
    """The script's parser: its docstring's first paragraph as description, ``--out`` (default ``out``) and, given a
    default ``workdir``, ``--workdir`` (where the nnU-Net folders and predictions of a training benchmark go)."""
    parser = argparse.ArgumentParser(description=doc.split('\n\n')[0])
    if workdir is not None:
        parser.add_argument('--workdir', default=workdir)
    parser.add_argument('--out', default=out)
    return parser


def add_device_option(parser: argparse.ArgumentParser, help: str) -> None:
    """``--device cpu|cuda``: only for scripts whose code moves their work (``help`` says which) to that device."""
    parser.add_argument('--device', default='cpu', choices=DEVICES, help=help)


def environment(device: str) -> dict:
    import torch
    name = torch.cuda.get_device_name() if device.startswith('cuda') else platform.processor() or platform.machine()
    return {'date': date.today().isoformat(), 'device': device, 'device_name': name, 'cpu_cores': os.cpu_count(),
            'torch': torch.__version__, 'torch_threads': torch.get_num_threads(), 'python': platform.python_version()}


def write_json(path: str, data) -> None:
    os.makedirs(dirname(abspath(path)), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(data, f, indent=2)


def write_results(path: str, data) -> None:
    """The JSON file, and a last stdout line that names it."""
    write_json(path, data)
    print(f"\nwritten: {path}")


def markdown_table(headers, rows) -> str:
    lines = ['| ' + ' | '.join(headers) + ' |', '|' + '|'.join('---' for _ in headers) + '|']
    lines += ['| ' + ' | '.join(str(c) for c in row) + ' |' for row in rows]
    return '\n'.join(lines)


# ------------------------------------------------------------------------------------------------ timing
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


# ------------------------------------------------------------------------------------------------ environment
def nnunet_env(workdir) -> dict:
    """This process's environment with nnU-Net's three folders under ``workdir``, for our console scripts."""
    return {**os.environ, **{v: str(Path(workdir) / v) for v in NNUNET_FOLDERS}}


def use_nnunet_folders(workdir) -> None:
    """nnU-Net's three folders under ``workdir``, made and set in this process's environment (in-process planning
    and trainers)."""
    for variable in NNUNET_FOLDERS:
        os.environ[variable] = join(workdir, variable)
        os.makedirs(os.environ[variable], exist_ok=True)


def training_env(env: dict, results=None) -> dict:
    """``env`` for a training: one augmentation worker process (nnUNet_n_proc_DA=1); ``results``: another
    nnUNet_results folder, for a second arm trained on the same preprocessed data."""
    return {**env, "nnUNet_n_proc_DA": "1", **({"nnUNet_results": str(results)} if results is not None else {})}


# ------------------------------------------------------------------------------------------------ data
def run_command(env: dict, command: str, *args) -> str:
    """One of our console scripts from this interpreter's environment; its output ends the run if it fails."""
    # this environment's console script, else the PATH's (a GPU machine installs the wheels with pip --target)
    local = join(os.path.dirname(sys.executable), command)
    executable = local if os.path.exists(local) else shutil.which(command, path=env.get("PATH"))
    if executable is None:
        sys.exit(f"{command} not found: install nnlandmark (pip install -e .) in this environment")
    result = subprocess.run([executable, *map(str, args)], env=env, capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"{command} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return result.stdout


def plan_cpu(env: dict, dataset: int, *extra) -> None:
    """nnLandmark_plan_and_preprocess with the CPU plans (``extra``: e.g. --cpu_whole_volume)."""
    run_command(env, "nnLandmark_plan_and_preprocess", "-d", dataset, "--cpu_plans", *extra)


def spheres(env, dataset: int, name: str, **options) -> Path:
    """The demo's synthetic spheres as raw dataset ``dataset`` in ``env``'s nnUNet_raw (``options``:
    make_synthetic_dataset's, e.g. n_train, n_test, seed); its folder."""
    from nnlandmark.dataset_conversion.synthetic import make_synthetic_dataset
    return Path(make_synthetic_dataset(env["nnUNet_raw"], dataset, name, **options))


def planned_spheres(workdir: str, dataset: int, name: str, n_train: int, **cpu_plans) -> str:
    """In this process: nnU-Net's folders under ``workdir``, the demo's spheres (``n_train`` cases, no test cases),
    nnU-Net's planning and preprocessing (3d_fullres), then the CPU plans (``cpu_plans``: derive_cpu_plans'
    options); returns the CPU plans identifier."""
    use_nnunet_folders(workdir)
    from nnlandmark.planning import derive_cpu_plans, plan_and_preprocess
    spheres(os.environ, dataset, name, n_train=n_train, n_test=0)
    return derive_cpu_plans(dataset, plan_and_preprocess(dataset, ('3d_fullres',)), **cpu_plans)


def scene_dataset(env: dict, dataset: int, name: str, images, truth: dict, n_train: int, **options) -> Path:
    """A raw dataset of scans written by ``_scenes.write_scans`` into ``images`` ({case: {landmark: ITK index}} in
    ``truth``); the cases after the first ``n_train`` are its test cases. ``options`` go to write_landmark_dataset."""
    from nnlandmark.dataset_conversion.dataset_writer import CaseSource, write_landmark_dataset
    cases = [CaseSource(case, [str(Path(images) / f"{case}.nii.gz")], points, "voxel", case)
             for case, points in truth.items()]
    return Path(write_landmark_dataset(cases, env["nnUNet_raw"], dataset, name, overwrite=True,
                                       test_cases=list(truth)[n_train:], **options))


def edit_json(path, change) -> None:
    """Rewrite a JSON file (a dataset.json between two arms of a benchmark) with ``change(content)`` applied."""
    content = json.loads(Path(path).read_text())
    change(content)
    Path(path).write_text(json.dumps(content))


def reference_mres(raw: Path) -> dict:
    """Two predictors that look at no image, MRE on the test cases (world mm). "mean shape": every landmark at its
    mean training position, what a model must beat. "affine oracle": the mean shape under the affine map that best
    fits each test case's TRUE landmarks (least squares): a model that knew every case's pose, scale and shear
    exactly but nothing of its local deformation."""
    world = read_landmark_table(raw / LANDMARKS_WORLD_JSON)[1]
    test = {p.name[:-len("_0000.nii.gz")] for p in (raw / "imagesTs").glob("*_0000.nii.gz")}
    names = list(next(iter(world.values())))
    mean = {n: np.mean([world[c][n] for c in world if c not in test and world[c][n] is not None], 0) for n in names}
    shape, oracle = [], []
    for case in test:
        known = [n for n in names if world[case][n] is not None]
        source, truth = np.array([[*mean[n], 1] for n in known]), np.array([world[case][n] for n in known])
        shape += list(np.linalg.norm(source[:, :3] - truth, axis=1))
        if len(known) > 4:  # an affine map fits any 4 points exactly: no reference then
            affine = np.linalg.lstsq(source, truth, rcond=None)[0]
            oracle += list(np.linalg.norm(source @ affine - truth, axis=1))
    return {"mean_shape": float(np.mean(shape)), "affine_oracle": float(np.mean(oracle)) if oracle else float("nan")}


# ------------------------------------------------------------------------------------------------ train, predict
def train_cpu(env: dict, raw, trainer: str, configuration: str = "3d_fullres", device: str = "cpu"):
    """Train fold 0 of the raw dataset folder ``raw`` with the CPU plans (on CPU unless told); its fold folder."""
    run_command(env, "nnLandmark_train", Path(raw).name, configuration, 0, "-tr", trainer, "-p", CPU_PLANS,
                "-device", device)
    return fold_folder(env, raw, trainer, configuration)


def fold_folder(env: dict, raw, trainer: str, configuration: str = "3d_fullres"):
    return Path(env["nnUNet_results"]) / Path(raw).name / f"{trainer}__{CPU_PLANS}__{configuration}" / "fold_0"


def epoch_seconds(fold):
    """Seconds of each epoch of a finished training, from its final checkpoint's log."""
    import torch
    logging = torch.load(join(fold, "checkpoint_final.pth"), map_location="cpu", weights_only=False)["logging"]
    return np.subtract(logging["epoch_end_timestamps"], logging["epoch_start_timestamps"])


def predict_test_cases(env: dict, raw, trainer: str, out, *extra, configuration: str = "3d_fullres",
                       device: str = "cpu") -> dict:
    """Predict the raw dataset's imagesTs (on CPU unless told) and evaluate against its world landmarks; the summary."""
    raw = Path(raw)
    run_command(env, "nnLandmark_predict", "-i", raw / "imagesTs", "-o", out, "-d", raw.name, "-tr", trainer,
                "-p", CPU_PLANS, "-c", configuration, "-device", device, "--disable_tqdm", *extra)
    run_command(env, "nnLandmark_evaluate", "-pred", out, "-gt", raw / LANDMARKS_WORLD_JSON)
    return json.loads((Path(out) / "evaluation" / "summary.json").read_text())
