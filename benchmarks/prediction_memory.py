"""Peak memory and wall time of landmark prediction: our path vs a full-resolution heatmap export.

A 256^3 image at 1 mm, plans at 2 mm target spacing (so 128^3 preprocessed), a network with random weights
built from the CPU plans for N landmarks. Each configuration runs in a fresh subprocess; peak = its resident
memory high-water mark (VmHWM).

- ours:   ``LandmarkPredictor.predict`` (preprocess, sliding window, N fp16 heatmaps in preprocessed space,
          per-channel peak mapped back);
- export: the same preprocessing and heatmaps, then exported the way a segmentation-style prediction is:
          nnU-Net's ``resampling_fn_probabilities`` to the original grid (N float32 channels of 256^3) and
          ``revert_cropping_on_probabilities``, then the per-channel argmax. (nnU-Net's own export would also
          allocate a softmax copy and a segmentation: this baseline is a lower bound.)

Target: peak(ours) <= 0.5 x peak(export) for 32 landmarks.

    .venv/bin/python benchmarks/prediction_memory.py [--sizes 5 14 32 64] [--device cuda] [--out FILE]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from os.path import join

from _common import (add_device_option, benchmark_parser, default_out, environment, markdown_table, planned_spheres,
                     stdout_to_stderr, write_results)

DATASET_ID = 978
TARGET_RATIO, TARGET_AT = 0.5, 32
MARKER = 'RESULT '


def memory_mb(field: str) -> float:
    """VmHWM (peak) or VmRSS (current) of this process in MiB; ru_maxrss where /proc is missing."""
    try:
        with open('/proc/self/status') as f:
            return next(int(line.split()[1]) for line in f if line.startswith(field + ':')) / 1024
    except (OSError, StopIteration):
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ------------------------------------------------------------------------------------- parent: data and plans
def prepare(workdir: str, size: int, image_spacing: float, target_spacing: float, patch: int) -> str:
    """Plan a small synthetic dataset, derive CPU plans (small net, ``patch``^3) at ``target_spacing``, write
    the ``size``^3 test image; returns the plans file."""
    import numpy as np
    import SimpleITK as sitk
    from batchgenerators.utilities.file_and_folder_operations import load_json, save_json
    from nnlandmark.paths import dataset_name
    plans_id = planned_spheres(workdir, DATASET_ID, 'MemoryBench', 4, patch_size=(patch,) * 3)
    plans = load_json(join(os.environ['nnUNet_preprocessed'], dataset_name(DATASET_ID), plans_id + '.json'))
    plans['configurations']['3d_fullres']['spacing'] = [target_spacing] * 3
    save_json(plans, join(workdir, 'plans.json'), sort_keys=False)
    image = np.random.default_rng(0).normal(1.0, 0.2, (size,) * 3).astype(np.float32)  # non-zero: no cropping
    itk = sitk.GetImageFromArray(image)
    itk.SetSpacing((image_spacing,) * 3)
    sitk.WriteImage(itk, join(workdir, 'image_0000.mha'))
    return join(workdir, 'plans.json')


def dataset_json(n: int) -> dict:
    return {'channel_names': {'0': 'synthetic'}, 'file_ending': '.mha', 'numTraining': 0,
            'labels': {'background': 0, **{f'landmark_{i:02d}': i for i in range(1, n + 1)}}}


def run_worker(mode: str, n: int, plans_file: str, image: str, device: str, threads: int) -> dict:
    env = {**os.environ, 'nnUNet_def_n_proc': str(threads), 'OMP_NUM_THREADS': str(threads)}
    command = [sys.executable, __file__, '--worker', mode, '--landmarks', str(n), '--plans', plans_file,
               '--image', image, '--device', device]
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    lines = [line for line in result.stdout.splitlines() if line.startswith(MARKER)]
    if result.returncode != 0 or not lines:
        return {'mode': mode, 'landmarks': n, 'error': f"exit {result.returncode}: {result.stderr[-500:]}"}
    return json.loads(lines[-1][len(MARKER):])


# ------------------------------------------------------------------------------------- child: one configuration
def worker(mode: str, n: int, plans_file: str, image: str, device_name: str) -> dict:
    import numpy as np
    import torch
    from batchgenerators.utilities.file_and_folder_operations import load_json
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
    from nnlandmark.heatmaps import channel_maxima
    from nnlandmark.inference.predictor import LandmarkPredictor
    from nnlandmark.trainers.nnLandmarkTrainer import nnLandmarkTrainer

    torch.manual_seed(0)
    device = torch.device(device_name)
    plans_manager = PlansManager(load_json(plans_file))
    configuration = plans_manager.get_configuration('3d_fullres')
    network = nnLandmarkTrainer.build_network_architecture(plans_manager, configuration, 1, n + 1, False)
    predictor = LandmarkPredictor(use_mirroring=False, device=device, allow_tqdm=False)
    predictor.manual_initialization(network, plans_manager, configuration, [network.state_dict()], dataset_json(n),
                                    'nnLandmarkTrainer', None)
    rss_before = memory_mb('VmRSS')
    start = time.perf_counter()
    if mode == 'ours':
        predictor.predict(image)
    else:
        preprocessor = configuration.preprocessor_class(verbose=False)
        data, _, properties = preprocessor.run_case([image], None, plans_manager, configuration, dataset_json(n))
        heat = predictor.predict_heatmaps(torch.from_numpy(data)).float()
        full = configuration.resampling_fn_probabilities(
            heat, properties['shape_after_cropping_and_before_resampling'], configuration.spacing,
            [properties['spacing'][i] for i in plans_manager.transpose_forward])
        del heat
        full = plans_manager.get_label_manager(dataset_json(n)).revert_cropping_on_probabilities(
            full, properties['bbox_used_for_cropping'], properties['shape_before_cropping'])
        full = np.ascontiguousarray(full.transpose([0] + [i + 1 for i in plans_manager.transpose_backward]))
        channel_maxima(torch.from_numpy(full))
    if device.type == 'cuda':
        torch.cuda.synchronize()
    return {'mode': mode, 'landmarks': n, 'seconds': time.perf_counter() - start, 'rss_before_mb': rss_before,
            'peak_mb': memory_mb('VmHWM'),
            'cuda_peak_mb': torch.cuda.max_memory_allocated() / 2 ** 20 if device.type == 'cuda' else None}


def main():
    parser = benchmark_parser(__doc__, out=default_out(__file__))
    add_device_option(parser, 'where the workers predict')
    parser.add_argument('--sizes', type=int, nargs='+', default=[5, 14, 32, 64], help='landmark counts')
    parser.add_argument('--image-size', type=int, default=256, help='cubic image edge in voxels (1 mm)')
    parser.add_argument('--target-spacing', type=float, default=2.0, help='plans spacing in mm')
    parser.add_argument('--patch', type=int, default=64, help='cubic patch edge of the CPU plans')
    parser.add_argument('--repeats', type=int, default=1, help='interleaved repetitions of every configuration')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch threads in the workers (1: wall times stay comparable on a busy machine)')
    parser.add_argument('--worker', choices=('ours', 'export'), help=argparse.SUPPRESS)
    parser.add_argument('--landmarks', type=int, help=argparse.SUPPRESS)
    parser.add_argument('--plans', help=argparse.SUPPRESS)
    parser.add_argument('--image', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(MARKER + json.dumps(worker(args.worker, args.landmarks, args.plans, args.image, args.device)))
        return

    runs = []
    with tempfile.TemporaryDirectory(prefix='nnlandmark_bench_') as workdir:
        with stdout_to_stderr():  # nnU-Net's planning chatter; the tables go to stdout
            plans_file = prepare(workdir, args.image_size, 1.0, args.target_spacing, args.patch)
            image = join(workdir, 'image_0000.mha')
            for r in range(args.repeats):
                for n in args.sizes:
                    for mode in ('ours', 'export')[::1 if r % 2 == 0 else -1]:
                        runs.append(run_worker(mode, n, plans_file, image, args.device, args.threads))
                        print(runs[-1], flush=True)

    rows, table = [], []
    for n in args.sizes:
        got = {m: [x for x in runs if x['landmarks'] == n and x['mode'] == m and 'error' not in x]
               for m in ('ours', 'export')}
        if not got['ours'] or not got['export']:
            errors = [x['error'] for x in runs if x['landmarks'] == n and 'error' in x]
            rows.append({'landmarks': n, 'error': errors})
            table.append([n] + ['failed'] * 7)
            continue
        row = {'landmarks': n}
        for m in ('ours', 'export'):
            row[f'{m}_peak_mb'] = statistics.median(x['peak_mb'] for x in got[m])
            row[f'{m}_seconds'] = statistics.median(x['seconds'] for x in got[m])
            row[f'{m}_rss_before_mb'] = statistics.median(x['rss_before_mb'] for x in got[m])
            row[f'{m}_cuda_peak_mb'] = got[m][0]['cuda_peak_mb']
        row['peak_ratio'] = row['ours_peak_mb'] / row['export_peak_mb']
        row['added_ratio'] = ((row['ours_peak_mb'] - row['ours_rss_before_mb'])
                              / (row['export_peak_mb'] - row['export_rss_before_mb']))
        row['time_ratio'] = row['ours_seconds'] / row['export_seconds']
        full_gb = n * args.image_size ** 3 * 4 / 2 ** 30
        rows.append({**row, 'full_resolution_stack_gib': full_gb})
        table.append([n, f"{row['ours_peak_mb']:.0f}", f"{row['export_peak_mb']:.0f}", f"{row['peak_ratio']:.2f}",
                      f"{row['added_ratio']:.2f}", f"{row['ours_seconds']:.1f}", f"{row['export_seconds']:.1f}",
                      f"{full_gb:.2f}"])

    at_target = next((r for r in rows if r['landmarks'] == TARGET_AT and 'peak_ratio' in r), None)
    results = {'environment': {**environment(args.device), 'torch_threads': args.threads},
               'image': [args.image_size] * 3, 'image_spacing_mm': 1.0, 'target_spacing_mm': args.target_spacing,
               'patch': [args.patch] * 3, 'repeats': args.repeats,
               'target': f'peak ratio <= {TARGET_RATIO} at {TARGET_AT} landmarks', 'rows': rows, 'runs': runs,
               'target_met': None if at_target is None else at_target['peak_ratio'] <= TARGET_RATIO}
    pre = round(args.image_size / args.target_spacing)
    print(f"## prediction peak memory, {args.device}: {args.image_size}^3 image at 1 mm -> {pre}^3 preprocessed at "
          f"{args.target_spacing:g} mm, patch {args.patch}^3, {args.threads} torch thread(s), random weights, "
          f"one fresh process per run "
          f"(peak = VmHWM; 'above RSS before' subtracts the RSS after imports and network build; "
          f"median of {args.repeats})\n")
    print(markdown_table(['landmarks', 'ours peak [MiB]', 'export peak [MiB]', 'ours / export',
                          'ours / export above RSS before', 'ours [s]',
                          'export [s]', 'N x float32 full-res [GiB]'], table))
    if at_target:
        print(f"\npeak ratio at {TARGET_AT} landmarks: {at_target['peak_ratio']:.2f} "
              f"(target <= {TARGET_RATIO}: {'met' if results['target_met'] else 'MISSED'})")
    write_results(args.out, results)


if __name__ == '__main__':
    main()
