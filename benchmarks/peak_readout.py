"""Peak readout: the same trained model's heatmaps read two ways, side by side: ``refine_peaks`` (the highest 125
voxels within 0.15 of the maximum in a 17^3 window) and the readout before 2026-12-03 (every voxel within 0.15 in a
7^3 window, written out below as the reference). Test MRE in mm of each against the truth.

    python benchmarks/peak_readout.py --model MODEL_FOLDER --images imagesTs --truth all_landmarks_world.json
                                      [-f FOLD] [--priors COARSE_PREDICTIONS] [--out FILE]
    (a cascade's fine stage: --priors is the coarse stage's prediction folder, e.g. OUT/3d_whole; a few minutes)
"""
import itertools
import json
from pathlib import Path

import numpy as np
import torch

from _common import benchmark_parser, default_out, environment, markdown_table, write_results


def reference_refine(heat: torch.Tensor, peaks: np.ndarray, radius: int = 3, drop: float = 0.15) -> np.ndarray:
    """The readout before 2026-12-03: weighted centroid of max(h - (h_peak - drop), 0) in a (2r+1)^D window."""
    n, dims = heat.shape[0], heat.ndim - 1
    offsets = np.array(list(itertools.product(range(-radius, radius + 1), repeat=dims)))
    positions = peaks[:, None, :] + offsets[None]
    shape = np.array(heat.shape[1:])
    inside = torch.from_numpy(np.all((positions >= 0) & (positions < shape), -1))
    clipped = np.clip(positions, 0, shape - 1)
    window = heat[(torch.arange(n)[:, None], *[torch.from_numpy(clipped[..., d]) for d in range(dims)])].float()
    window = window * inside
    weights = (window - (window[:, len(offsets) // 2:len(offsets) // 2 + 1] - drop)).clamp(min=0).numpy()
    return (weights[..., None] * positions).sum(1) / weights.sum(1, keepdims=True)


def main():
    parser = benchmark_parser(__doc__, out=default_out(__file__))
    parser.add_argument('--model', required=True)
    parser.add_argument('--images', required=True)
    parser.add_argument('--truth', required=True)
    parser.add_argument('-f', default='0', help="fold (or 'all')")
    parser.add_argument('--priors', help="a cascade's coarse prediction folder")
    args = parser.parse_args()
    from nnlandmark.geometry import Geometry, preprocessed_to_original_index
    from nnlandmark.heatmaps import channel_maxima, refine_peaks
    from nnlandmark.inference.cascade import WEAK_FINE_LIKELIHOOD
    from nnlandmark.inference.predictor import SEARCH_RADIUS_MM, LandmarkPredictor
    from nnlandmark.io.predictions import read_predictions
    from nnlandmark.landmark_set import landmark_names, multi_instance
    from nnlandmark.stages import coarse_stage_folder, read_search_radii

    truth = json.loads(Path(args.truth).read_text())
    predictor = LandmarkPredictor.from_model_folder(args.model, [args.f], allow_tqdm=False)
    priors = read_predictions(args.priors)[0] if args.priors else {}
    coarse = coarse_stage_folder(args.model)
    radii = read_search_radii(coarse, landmark_names(predictor.dataset_json)) if args.priors and coarse else None
    classes = multi_instance(predictor.dataset_json)
    errors = {'7^3, every voxel within 0.15 (before)': [], '17^3, highest 125 within 0.15 (now)': []}
    for image in sorted(Path(args.images).glob('*_0000.*')):
        case = image.name.split('_0000')[0]
        if case not in truth:
            continue
        data, properties = predictor._preprocess([str(image)])
        npz = Path(args.out).with_suffix('.npz')   # the heatmaps as nnLandmark_predict reads them (search balls)
        predictor.predict_preprocessed(data, properties, priors.get(case), radii or SEARCH_RADIUS_MM,
                                       WEAK_FINE_LIKELIHOOD if priors else None, str(npz))
        heat = torch.from_numpy(np.load(npz)['heatmaps'].astype(np.float32))
        names = landmark_names(predictor.dataset_json)
        keep = [i for i, n in enumerate(names) if n not in classes and n in truth[case]]
        peaks, _ = channel_maxima(heat)
        geometry = Geometry.of_sitk_stuff(properties['sitk_stuff'])
        true = np.array([truth[case][names[i]] for i in keep])
        for key, readout in zip(errors, (reference_refine, refine_peaks)):
            index = preprocessed_to_original_index(readout(heat, peaks)[keep], heat.shape[1:], properties,
                                                   predictor.plans_manager.transpose_backward)
            errors[key] += np.linalg.norm(geometry.index_to_world(index) - true, axis=1).tolist()
    rows = [[k, f'{np.mean(e):.3f}', f'{np.median(e):.3f}', len(e)] for k, e in errors.items()]
    print(markdown_table(['readout', 'test MRE (mm)', 'median (mm)', 'landmarks'], rows))
    write_results(args.out, {'environment': environment('cpu'), 'model': args.model, 'fold': args.f,
                             'mre_mm': {k: float(np.mean(e)) for k, e in errors.items()}})


if __name__ == '__main__':
    main()
