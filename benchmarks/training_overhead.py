"""Training overhead of nnLandmarkTrainer over plain nnU-Net, and of our heatmap loss over a per-landmark loop.

(a) Seconds per ``train_step`` of ``nnLandmarkTrainer`` vs nnU-Net's ``nnUNetTrainer`` on the same preprocessed
    synthetic data, plans (nnLandmarkCPUPlans: patch 32^3, features 16-128, batch 2) and batches; the plain
    trainer both as nnU-Net ships it (deep supervision on) and with deep supervision off (the same network as
    ours but for the extra background head). Interleaved rounds, warm-up excluded, medians. Target: ratio <= 1.10.
(b) Heatmap targets + BCE top-20 % alone: ``TopKBCEHeatmapLoss`` vs a reference-style implementation (Python loop
    per sample and landmark pasting a precomputed EDT ball, written below), for several landmark counts.

    .venv/bin/python benchmarks/training_overhead.py [--device cuda] [--out FILE]
"""
import copy
import os
import statistics
import tempfile
from os.path import join

import torch
import torch.nn.functional as F

from _common import (add_device_option, benchmark_parser, default_out, environment, markdown_table, planned_spheres,
                     stdout_to_stderr, timed, write_results)

DATASET_ID = 979
TARGET_RATIO = 1.10


# ---------------------------------------------------------------------------------------------- (a) train_step
def build_trainers(plans_identifier: str, num_landmarks, device: torch.device) -> dict:
    """The three trainers on the same plans; ``num_landmarks`` None: the dataset's own labels, else a
    dataset.json with that many labels (then the batches are random, see ``random_batches``)."""
    from batchgenerators.utilities.file_and_folder_operations import load_json
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnlandmark.paths import dataset_name
    from nnlandmark.trainers import trainer_class_by_name
    folder = join(os.environ['nnUNet_preprocessed'], dataset_name(DATASET_ID))
    plans, dataset_json = load_json(join(folder, plans_identifier + '.json')), load_json(join(folder, 'dataset.json'))
    if num_landmarks is not None:
        dataset_json['labels'] = {'background': 0, **{f'landmark_{i}': i for i in range(1, num_landmarks + 1)}}

    def make(cls, deep_supervision=None):  # what nnlandmark.trainers.run.build_trainer does, for either class
        trainer = cls(plans={**copy.deepcopy(plans), 'continue_training': False}, configuration='3d_fullres',
                      fold=0, dataset_json=dataset_json, device=device)
        if deep_supervision is not None:
            trainer.enable_deep_supervision = deep_supervision
        trainer.initialize()
        trainer.network.train()
        return trainer

    return {'nnUNetTrainer (deep supervision, stock)': make(nnUNetTrainer, True),
            'nnUNetTrainer (no deep supervision)': make(nnUNetTrainer, False),
            'nnLandmarkTrainer': make(trainer_class_by_name('nnLandmarkTrainer'))}


def loader_batches(trainer, n: int, device: torch.device) -> list:
    """``n`` augmented batches from nnU-Net's own training dataloader (deep-supervision targets: a list)."""
    loader, _ = trainer.get_dataloaders()
    batches = [next(loader) for _ in range(n)]
    return [{'data': b['data'].to(device), 'target': [t.to(device) for t in b['target']], 'keys': b['keys']}
            for b in batches]


def random_batches(trainer, num_landmarks: int, n: int, device: torch.device) -> list:
    """``n`` fixed random batches of the plans' shapes: data (B, 1, *patch), label cubes for ``num_landmarks``,
    downsampled (nearest) for the deep-supervision outputs of ``trainer``; keys: real training cases."""
    generator = torch.Generator().manual_seed(1)
    patch = trainer.configuration_manager.patch_size
    keys = list(trainer.do_split()[0][:trainer.batch_size])
    batches = []
    for _ in range(n):
        seg = label_cubes(num_landmarks, trainer.batch_size, patch, 1, generator)
        targets = [F.interpolate(seg, size=[round(p * f) for p, f in zip(patch, scale)], mode='nearest')
                   for scale in trainer._get_deep_supervision_scales()]
        data = torch.randn(trainer.batch_size, 1, *patch, generator=generator)
        batches.append({'data': data.to(device), 'target': [t.to(device) for t in targets], 'keys': keys})
    return batches


def bench_train_step(trainers: dict, batches: list, rounds: int, warmup: int, device) -> dict:
    """Seconds per train_step for each trainer and round; the order of the trainers rotates every round."""
    # without deep supervision the target is the full-resolution label map alone
    own = {name: batches if t.enable_deep_supervision else [{**b, 'target': b['target'][0]} for b in batches]
           for name, t in trainers.items()}

    def run(name, steps):
        for batch in steps:
            trainers[name].train_step(batch)

    names = list(trainers)
    for name in names:
        run(name, own[name][:warmup])
    per_round = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            per_round[name].append(timed(lambda: run(name, own[name]), device) / len(batches))
    return per_round


# ---------------------------------------------------------------------------------------------- (b) loss alone
class ReferenceHeatmapLoss:
    """The baseline: per sample and per landmark, find the label cube, paste a precomputed linear EDT ball
    (1 at the centre, 0 at ``radius``) into a zero volume at the cube centre, then BCE top-k %."""

    def __init__(self, num_landmarks: int, radius: float = 15.0, k_percent: float = 20.0, device='cpu'):
        self.num_landmarks, self.radius, self.k_percent = num_landmarks, radius, k_percent
        self.r = int(radius)
        axis = torch.arange(-self.r, self.r + 1, dtype=torch.float32, device=device)
        distance = torch.sqrt(axis[:, None, None] ** 2 + axis[None, :, None] ** 2 + axis[None, None, :] ** 2)
        self.ball = (1 - distance / radius).clamp(min=0)

    def targets(self, seg: torch.Tensor) -> torch.Tensor:
        spatial = seg.shape[2:]
        target = torch.zeros(seg.shape[0], self.num_landmarks, *spatial, device=seg.device)
        for b in range(seg.shape[0]):
            for landmark in range(self.num_landmarks):
                voxels = torch.nonzero(seg[b, 0] == landmark + 1)
                if len(voxels) == 0:
                    continue
                centre = voxels.float().mean(0).round().long().tolist()
                dst, src = [], []
                for c, size in zip(centre, spatial):  # clip the ball at the patch border
                    lo, hi = max(c - self.r, 0), min(c + self.r + 1, size)
                    dst.append(slice(lo, hi))
                    src.append(slice(lo - (c - self.r), hi - (c - self.r)))
                target[(b, landmark, *dst)] = self.ball[tuple(src)]
        return target

    def __call__(self, logits: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        loss = F.binary_cross_entropy_with_logits(logits.float(), self.targets(seg), reduction='none').flatten(2)
        k = max(1, int(round(loss.shape[-1] * self.k_percent / 100)))
        return loss.topk(k, dim=-1, sorted=False).values.mean()


def label_cubes(num_landmarks: int, batch: int, patch, margin: int, generator) -> torch.Tensor:
    """(B, 1, *patch) label map with one 3x3x3 cube per landmark, centres >= ``margin`` voxels from the border
    (margin 15: no heatmap ball is clipped) and cubes not touching each other."""
    seg = torch.zeros(batch, 1, *patch)
    for b in range(batch):
        centres = []
        while len(centres) < num_landmarks:
            c = torch.stack([torch.randint(margin, p - margin, (), generator=generator) for p in patch])
            if all((c - o).abs().max() >= 3 for o in centres):
                centres.append(c)
        for label, (z, y, x) in enumerate(centres, start=1):
            seg[b, 0, z - 1:z + 2, y - 1:y + 2, x - 1:x + 2] = label
    return seg


def bench_loss(sizes, patch: int, batch: int, repeats: int, device) -> list:
    from nnlandmark.losses import TopKBCEHeatmapLoss
    generator = torch.Generator().manual_seed(0)
    rows = []
    for n in sizes:
        seg = label_cubes(n, batch, (patch,) * 3, 15, generator).to(device)
        logits = torch.randn(batch, n, patch, patch, patch, generator=generator).to(device)
        ours, reference = TopKBCEHeatmapLoss(n, 15.0, 20.0), ReferenceHeatmapLoss(n, 15.0, 20.0, device)
        with torch.no_grad():
            a, b = float(ours(logits, seg)), float(reference(logits, seg))  # also the warm-up
            assert abs(a - b) < 1e-4, f"{n} landmarks: loss {a} (ours) != {b} (reference)"
            times = {'ours': [], 'reference': []}
            for r in range(repeats):
                for name, fn in (('ours', ours), ('reference', reference))[::1 if r % 2 == 0 else -1]:
                    times[name].append(timed(lambda: fn(logits, seg), device))
        rows.append({'landmarks': n, 'patch': patch, 'batch': batch, 'loss_ours': a, 'loss_reference': b,
                     'ours_s': statistics.median(times['ours']), 'reference_s': statistics.median(times['reference']),
                     'ratio': statistics.median(o / ref for o, ref in zip(times['ours'], times['reference']))})
    return rows


def summarise(per_round: dict, trainers: dict, from_loader: bool, batches: list) -> dict:
    ours = per_round['nnLandmarkTrainer']
    summary = {'landmarks': trainers['nnLandmarkTrainer'].num_landmarks,
               'batches': "nnU-Net dataloader" if from_loader else "fixed random",
               'patch': list(batches[0]['data'].shape[2:]), 'batch': batches[0]['data'].shape[0], 'trainers': {}}
    for name, seconds in per_round.items():
        summary['trainers'][name] = {'s_per_iteration_rounds': seconds, 's_per_iteration': statistics.median(seconds),
                                     'ours_over_this': statistics.median(o / s for o, s in zip(ours, seconds))}
    summary['ratio'] = summary['trainers']['nnUNetTrainer (no deep supervision)']['ours_over_this']
    summary['target_met'] = summary['ratio'] <= TARGET_RATIO
    return summary


def main():
    parser = benchmark_parser(__doc__, out=default_out(__file__))
    add_device_option(parser, 'where the trainers, their batches and the losses run')
    parser.add_argument('--rounds', type=int, default=5, help='interleaved timing rounds per trainer')
    parser.add_argument('--steps', type=int, default=10, help='train steps per round')
    parser.add_argument('--warmup', type=int, default=3, help='untimed train steps per trainer first')
    parser.add_argument('--cases', type=int, default=8, help='synthetic training cases (64^3, 3 landmarks)')
    parser.add_argument('--train-landmarks', type=int, nargs='*', default=[32],
                        help='also time train_step for these landmark counts on fixed random batches')
    parser.add_argument('--sizes', type=int, nargs='+', default=[5, 14, 32, 64], help='landmark counts for (b)')
    parser.add_argument('--loss-patch', type=int, default=64, help='cubic patch edge for (b)')
    parser.add_argument('--loss-batch', type=int, default=2)
    parser.add_argument('--loss-repeats', type=int, default=6)
    parser.add_argument('--skip-training', action='store_true', help='only (b)')
    parser.add_argument('--threads', type=int, default=1, help="torch CPU threads; 1 by default: with 2 threads "
                        "a busy neighbour process slowed train_step 20x here, with 1 it stays stable")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == 'cuda':
        os.environ.setdefault('nnUNet_compile', 'false')  # the same eager network for all trainers
    results = {'environment': environment(args.device), 'target_ratio': TARGET_RATIO}

    if not args.skip_training:
        results['training'] = []
        with tempfile.TemporaryDirectory(prefix='nnlandmark_bench_') as workdir:
            with stdout_to_stderr():  # nnU-Net's chatter; the tables go to stdout
                # synthetic 64^3 cases -> nnU-Net plan + preprocess -> nnLandmarkCPUPlans
                plans = planned_spheres(workdir, DATASET_ID, 'TrainBench', args.cases)
                os.environ['nnUNet_n_proc_DA'] = '0'  # training only (0 crashes planning): batches in-process
                for n in [None] + args.train_landmarks:
                    trainers = build_trainers(plans, n, device)
                    stock = trainers['nnUNetTrainer (deep supervision, stock)']
                    batches = loader_batches(stock, args.steps, device) if n is None else \
                        random_batches(stock, n, args.steps, device)
                    per_round = bench_train_step(trainers, batches, args.rounds, args.warmup, device)
                    results['training'].append(summarise(per_round, trainers, n is None, batches))
                    del trainers, batches
        rows = [[t['landmarks'], t['batches'], name, f"{v['s_per_iteration']:.4f}", f"{v['ours_over_this']:.3f}"]
                for t in results['training'] for name, v in t['trainers'].items()]
        first = results['training'][0]
        print(f"## (a) train_step, {args.device} ({args.threads} torch thread(s)): patch {first['patch']}, "
              f"batch {first['batch']}, "
              f"{args.rounds} interleaved rounds x {args.steps} steps after {args.warmup} warm-up steps (medians)\n")
        print(markdown_table(['landmarks', 'batches', 'trainer', 's / iteration', 'nnLandmarkTrainer / this'], rows))
        print()
        for t in results['training']:
            print(f"ratio nnLandmarkTrainer / nnUNetTrainer (same network, no deep supervision), {t['landmarks']} "
                  f"landmarks: {t['ratio']:.3f} (target <= {TARGET_RATIO}: {'met' if t['target_met'] else 'MISSED'})")
        print()

    loss_rows = bench_loss(args.sizes, args.loss_patch, args.loss_batch, args.loss_repeats, device)
    results['loss'] = loss_rows
    print(f"## (b) heatmap targets + BCE top-20 % (forward), {args.device} ({args.threads} torch thread(s)): "
          f"patch {args.loss_patch}^3, batch {args.loss_batch}, median of {args.loss_repeats} interleaved repeats; "
          f"equal loss values asserted (1e-4)\n")
    print(markdown_table(['landmarks', 'ours [s]', 'reference loop [s]', 'ours / reference'],
                         [[r['landmarks'], f"{r['ours_s']:.4f}", f"{r['reference_s']:.4f}", f"{r['ratio']:.3f}"]
                          for r in loss_rows]))
    write_results(args.out, results)


if __name__ == '__main__':
    main()
