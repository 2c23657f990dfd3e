"""Localisation floor: integer argmax vs sub-voxel refined peaks on heatmaps with known sub-voxel centres.

Heatmaps are the trainer's own targets (``edt_heatmaps``: linear EDT cones, radius 15 voxels) at uniformly
random sub-voxel positions, ideal, with additive Gaussian noise (clipped to [0, 1] like a sigmoid output), and
slightly blurred (Gaussian, sigma 1 voxel). MRE in voxels of ``channel_maxima`` (integer argmax) and
``refine_peaks`` (what the predictor outputs). Target: refined <= 0.30 voxel; the integer floor for uniform
offsets is E|u|, u ~ U[-0.5, 0.5]^3, about 0.48 voxel.

    .venv/bin/python benchmarks/localisation_floor.py [--landmarks 1000] [--device cuda] [--out FILE]
"""
import numpy as np
import torch
from scipy import ndimage

from _common import add_device_option, benchmark_parser, default_out, environment, markdown_table, write_results

TARGET = 0.30
CONDITIONS = [('ideal cone', 0.0, 0.0), ('noise 0.05', 0.05, 0.0), ('noise 0.10', 0.10, 0.0),
              ('blurred (sigma 1)', 0.0, 1.0), ('blurred + noise 0.05', 0.05, 1.0)]


def heatmaps(centres: np.ndarray, size: int, radius: float, noise: float, blur: float, rng, device) -> torch.Tensor:
    from nnlandmark.heatmaps import edt_heatmaps
    c = torch.tensor(centres[None], dtype=torch.float32, device=device)
    heat = edt_heatmaps(c, torch.ones(c.shape[:2], dtype=torch.bool, device=device), (size,) * 3, radius)[0].cpu()
    if blur:
        heat = torch.from_numpy(ndimage.gaussian_filter(heat.numpy(), (0, blur, blur, blur)))
    if noise:
        heat = (heat + torch.from_numpy(rng.normal(0, noise, heat.shape).astype(np.float32))).clamp(0, 1)
    return heat


def main():
    parser = benchmark_parser(__doc__, out=default_out(__file__))
    parser.add_argument('--landmarks', type=int, default=1000, help='heatmaps (channels) per condition')
    parser.add_argument('--size', type=int, default=32, help='cubic heatmap edge in voxels')
    parser.add_argument('--radius', type=float, default=15.0)
    add_device_option(parser, 'where the targets are built (edt_heatmaps); the peaks are read on CPU, as the '
                      'predictor reads them')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    from nnlandmark.heatmaps import channel_maxima, refine_peaks

    rng = np.random.default_rng(args.seed)
    offsets = rng.uniform(-0.5, 0.5, (200_000, 3))
    floor = float(np.linalg.norm(offsets, axis=1).mean())  # Monte Carlo E|u|
    rows, table = [], []
    for name, noise, blur in CONDITIONS:
        centres = rng.uniform(8, args.size - 8, (args.landmarks, 3))
        heat = heatmaps(centres, args.size, args.radius, noise, blur, rng, args.device)
        peaks, _ = channel_maxima(heat)
        errors = {'integer': np.linalg.norm(peaks - centres, axis=1),
                  'refined': np.linalg.norm(refine_peaks(heat, peaks) - centres, axis=1)}
        row = {'condition': name, 'noise_std': noise, 'blur_sigma': blur,
               **{f'{k}_mre': float(e.mean()) for k, e in errors.items()},
               **{f'{k}_p95': float(np.percentile(e, 95)) for k, e in errors.items()}}
        row['target_met'] = row['refined_mre'] <= TARGET
        rows.append(row)
        table.append([name, f"{row['integer_mre']:.3f}", f"{row['refined_mre']:.3f}", f"{row['integer_p95']:.3f}",
                      f"{row['refined_p95']:.3f}", 'met' if row['target_met'] else 'MISSED'])

    print(f"## localisation floor: {args.landmarks} EDT cones (radius {args.radius:g}) per condition in "
          f"{args.size}^3, uniform sub-voxel centres; errors in voxels (theoretical integer floor "
          f"E|u| = {floor:.3f})\n")
    print(markdown_table(['heatmap', 'integer argmax MRE', 'refined MRE', 'integer p95', 'refined p95',
                          f'refined <= {TARGET}'], table))
    write_results(args.out, {'environment': environment(args.device), 'landmarks': args.landmarks,
                             'size': args.size, 'radius': args.radius, 'seed': args.seed, 'target_refined_mre': TARGET,
                             'integer_floor_uniform': floor, 'rows': rows})


if __name__ == '__main__':
    main()
