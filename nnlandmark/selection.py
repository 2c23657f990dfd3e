"""Which trained model predicts best, as nnU-Net's find_best_configuration decides it: every trained model (one
stage, or a cascade's fine stage, validated within its coarse stage's landmarks) and the average of every two, on
their pooled cross-validation predictions; and that average itself (``ensemble_folders``) for prediction folders.

Averaging is of coordinates, not heatmaps: the models may have different grids, and a landmark's position is what
each reports. Folds of one model are always ensembled at prediction time (their heatmaps averaged); cross-validation
cannot measure that, since each case is validated by one fold only.
"""
import os
from itertools import combinations
from os.path import join
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np

from nnlandmark.errors import LandmarkError
from nnlandmark.evaluation.crossval import collect_folds, cv_ground_truth, cv_instance_truth, pool_folds
from nnlandmark.evaluation.instances import MATCH_MM, instance_points, instance_summary, matched_pairs
from nnlandmark.evaluation.pipeline import evaluate_points
from nnlandmark.io.atomic import read_json, write_json_atomic
from nnlandmark.io.landmark_files import finite_point
from nnlandmark.io.predictions import (Points, case_prediction, read_instances, read_prediction,
                                      write_prediction_formats)
from nnlandmark.landmark_set import single_landmarks
from nnlandmark.paths import COARSE_STAGES, dataset_name, require_path, writable_folder
from nnlandmark.presence import read_instance_detection
from nnlandmark.stages import coarse_stage_folder, is_fine_stage

INFERENCE_INFORMATION_JSON = 'inference_information.json'   # nnU-Net's name for the choice


def trained_models(dataset) -> List[Path]:
    """The model folders of a dataset that have a validated fold."""
    results = Path(require_path('nnUNet_results')) / dataset_name(dataset)
    return sorted(p for p in results.glob('*__*__*') if p.is_dir() and any(p.glob('fold_*/validation')))


def average_points(models: Sequence[Points]) -> Points:
    """{case: {name: mean world}} over the cases and landmarks every model predicted."""
    cases = set.intersection(*(set(m) for m in models))
    return {c: {n: np.mean([m[c][n] for m in models], 0) for n in set.intersection(*(set(m[c]) for m in models))}
            for c in cases}


def _row(label: str, folders: Sequence[Path], summary: dict, folds: Sequence[str], note: str = '') -> dict:
    return {'model': label, 'folders': [f.name for f in folders], 'mre_mm': summary['mre_mm'],
            'median_mm': summary['median_mm'], 'sdr_4mm': summary['sdr']['4.0'], 'n_cases': summary['n_cases'],
            'folds': list(folds), 'note': note}


def _label(folder: Path) -> str:
    trainer, plans, configuration = folder.name.split('__')
    stage = f"cascade {COARSE_STAGES.get(configuration)} -> " if is_fine_stage(trainer) else ''
    return f"{stage}{configuration} ({trainer}, {plans})"


def _validated_as_cascade(folder: Path) -> bool:
    """A fine stage's validation predictions carry "stage" where they were read around the coarse landmarks."""
    sample = next((p for p in folder.glob('fold_*/validation/*.json') if p.name != 'summary.json'), None)
    return sample is not None and any('stage' in e for e in read_prediction(sample)['landmarks'].values()
                                      if isinstance(e, dict))


def find_best_configuration(dataset, ensembles: bool = True) -> dict:
    """Every trained model's pooled cross-validation against the dataset's ground truth (and of the coordinate
    average of every two), the best of those validated on the most cases, and the commands that predict with it;
    written to nnUNet_results/DatasetXXX/inference_information.json."""
    models = trained_models(dataset)
    if not models:
        raise LandmarkError(f"no trained model with a validated fold in "
                            f"{join(require_path('nnUNet_results'), dataset_name(dataset))}: train (and validate) "
                            f"a fold first")
    if not single_landmarks(read_json(join(models[0], 'dataset.json'), "dataset.json")):
        return _written(dataset, _best_by_instances(dataset, models))
    truth, _, _ = cv_ground_truth(dataset)
    predictions, folds, rows = {}, {}, []
    labels = {folder: _label(folder) for folder in models}
    for folder in models:
        predictions[folder], _, folds[folder] = collect_folds(folder)
        cascade_ok = coarse_stage_folder(str(folder)) is None or _validated_as_cascade(folder)
        note = '' if cascade_ok else 'validated on the whole image, not within its coarse stage: run --val again'
        rows.append(_row(labels[folder], [folder], evaluate_points(predictions[folder], truth)[0], folds[folder], note))
    if ensembles:
        for a, b in combinations(models, 2):
            if folds[a] == folds[b]:
                summary = evaluate_points(average_points([predictions[a], predictions[b]]), truth)[0]
                rows.append(_row(f"average of {labels[a]} and {labels[b]}", [a, b], summary, folds[a]))
    most = max(r['n_cases'] for r in rows)
    eligible = [r for r in rows if r['n_cases'] == most and not r['note']] or rows
    return _written(dataset, {'ranked_by': 'mre_mm', 'models': rows,
                              'best': min(eligible, key=lambda r: r['mre_mm'])})


def _best_by_instances(dataset, models: Sequence[Path]) -> dict:
    """A dataset of multi-instance classes only has no MRE: its models are ranked by the pooled cross-validation F1
    of their instances (decoded with each model's calibration, as ``nnLandmark_evaluate -d`` reports it), then by the
    matched pairs' MRE. Averages of two models are not formed (their instances would first have to be paired)."""
    truth = cv_instance_truth(dataset)
    rows = []
    for folder in models:
        detection = read_instance_detection(str(folder))
        instances, folds = pool_folds(folder, read_instances)
        found = instance_points(instances, detection or {})
        pooled = (instance_summary(found, truth, MATCH_MM) or {}).get('pooled', {})
        rows.append({'model': _label(folder), 'folders': [folder.name], 'f1': pooled.get('f1'),
                     'precision': pooled.get('precision'), 'recall': pooled.get('recall'),
                     'matched_mre_mm': pooled.get('matched_mre_mm'), 'n_cases': len(set(found) & set(truth)),
                     'folds': folds, 'note': '' if detection else 'no instance calibration: run nnLandmark_calibrate'})
    scored = [r for r in rows if r['f1'] is not None and not r['note']]
    if not scored:
        raise LandmarkError(f"no model of {dataset_name(dataset)} has calibrated instance predictions on cases with "
                            f"instance ground truth: run nnLandmark_calibrate -d {dataset}")
    most = max(r['n_cases'] for r in scored)
    best = min((r for r in scored if r['n_cases'] == most),
               key=lambda r: (-r['f1'], r['matched_mre_mm'] if r['matched_mre_mm'] is not None else np.inf))
    return {'ranked_by': 'f1', 'models': rows, 'best': best}


def _written(dataset, choice: dict) -> dict:
    """The choice with the commands that predict with it, written to inference_information.json."""
    result = {'dataset': dataset_name(dataset), **choice, 'predict': _commands(dataset, choice['best'])}
    write_json_atomic(result, join(require_path('nnUNet_results'), dataset_name(dataset), INFERENCE_INFORMATION_JSON))
    return result


def _commands(dataset, best: dict) -> List[str]:
    """The exact nnLandmark_predict command(s) for the choice (and nnLandmark_ensemble for an average)."""
    commands = []
    for i, name in enumerate(best['folders']):
        trainer, plans, configuration = name.split('__')
        out = 'OUTPUT_FOLDER' if len(best['folders']) == 1 else f'OUTPUT_FOLDER_{i + 1}'
        commands.append(f"nnLandmark_predict -d {dataset} -i INPUT_FOLDER -o {out} -c {configuration} -tr {trainer} "
                        f"-p {plans}")
    if len(best['folders']) > 1:
        inputs = ' '.join(f'OUTPUT_FOLDER_{i + 1}' for i in range(len(best['folders'])))
        commands.append(f"nnLandmark_ensemble -i {inputs} -o OUTPUT_FOLDER")
    return commands


def ensemble_folders(folders: Sequence[str], output_dir: str, formats: Sequence[str] = ('json',),
                     match_mm: float = MATCH_MM) -> List[str]:
    """CASE.json of the cases every folder predicted, with each landmark's voxel, world and likelihood averaged and
    ``present`` where at least half the models say so (no error estimate: no model was calibrated as this average),
    and each multi-instance class's instances that at least half the models found within ``match_mm`` of each other
    (``_average_instances``); returns the written CASE.json paths."""
    if len({os.path.realpath(f) for f in folders}) < 2:
        raise LandmarkError("nnLandmark_ensemble needs at least two different prediction folders (-i)")
    writable_folder(output_dir, "output folder -o")
    by_case = [{p.stem: p for p in Path(f).glob('*.json') if p.name != 'summary.json'} for f in folders]
    cases = sorted(set.intersection(*(set(c) for c in by_case)))
    if not cases:
        raise LandmarkError(f"the prediction folders {', '.join(folders)} share no case")
    os.makedirs(output_dir, exist_ok=True)
    written = []
    for case in cases:
        paths = [c[case] for c in by_case]
        predictions = [read_prediction(p) for p in paths]
        names = [n for n in predictions[0]['landmarks'] if all(n in p['landmarks'] for p in predictions)]
        landmarks = {n: _average_entry([(path, n, p['landmarks'][n]) for path, p in zip(paths, predictions)])
                     for n in names}
        found = [p.get('instances') or {} for p in predictions]
        for path, named in zip(paths, found):
            if not isinstance(named, dict):
                raise LandmarkError(f"{path}: \"instances\" must be an object {{class: [points]}}")
        classes = [c for c in found[0] if all(c in named for named in found)]
        instances = {c: _average_instances([(path, c, named[c]) for path, named in zip(paths, found)], match_mm)
                     for c in classes}
        prediction = case_prediction(case, predictions[0].get('image', case), landmarks,
                                     instances=instances if classes else None)
        target = join(output_dir, f'{case}.json')
        write_json_atomic(prediction, target)
        write_prediction_formats(prediction, output_dir, formats)
        written.append(target)
    return written


def _average_entry(entries: List[tuple]) -> Dict:
    """The mean of (path, name, entry) prediction entries, each checked to hold voxel, world and a likelihood."""
    points = []
    for path, name, entry in entries:
        where = f"{path}: landmark '{name}'"
        points.append(_checked_point(entry, where))
        if not isinstance(entry.get('present', True), bool):
            raise LandmarkError(f"{where}: \"present\" must be true or false, got {entry['present']!r}")
    votes = sum(e.get('present', True) for _, _, e in entries)
    return {'label': entries[0][2].get('label'), 'voxel': np.mean([v for v, _, _ in points], 0).tolist(),
            'world': np.mean([w for _, w, _ in points], 0).tolist(),
            'likelihood': float(np.mean([like for *_, like in points])),
            'present': 2 * votes >= len(entries), 'expected_error_mm': None, 'radius_mm': None}


def _average_instances(found: List[tuple], match_mm: float) -> List[dict]:
    """One class's instances as several models found them, (path, class, entries) each: every model's instances are
    matched one-to-one (Hungarian, within ``match_mm``) to the groups of the models before it, and a group that at
    least half the models found is kept with its mean voxel and world, and its mean likelihood where a model that
    missed it counts 0; strongest first."""
    groups: List[List[tuple]] = []   # (voxel, world, likelihood) of each model that found the instance
    for path, name, entries in found:
        if not isinstance(entries, list):
            raise LandmarkError(f"{path}: \"instances\" of '{name}' must be a list of points")
        points = [_checked_point(entry, f"{path}: instance {k + 1} of '{name}'") for k, entry in enumerate(entries)]
        centres = np.array([np.mean([world for _, world, _ in g], 0) for g in groups]).reshape(-1, 3)
        rows, cols = matched_pairs(np.reshape([world for _, world, _ in points], (-1, 3)), centres, match_mm)
        joined = dict(zip(rows.tolist(), cols.tolist()))
        for k, point in enumerate(points):
            if k in joined:
                groups[joined[k]].append(point)
            else:
                groups.append([point])
    kept = [{'voxel': np.mean([v for v, _, _ in g], 0).tolist(), 'world': np.mean([w for _, w, _ in g], 0).tolist(),
             'likelihood': sum(like for *_, like in g) / len(found)} for g in groups if 2 * len(g) >= len(found)]
    return sorted(kept, key=lambda e: -e['likelihood'])


def _checked_point(entry, where: str) -> tuple:
    """(voxel, world, likelihood) of a prediction entry, or a LandmarkError naming ``where``."""
    if not isinstance(entry, dict) or isinstance(entry.get('likelihood'), bool) or \
            not isinstance(entry.get('likelihood'), (int, float)):
        raise LandmarkError(f"{where} has no numeric likelihood: not a prediction of nnLandmark_predict")
    return finite_point(entry.get('voxel'), where), finite_point(entry.get('world'), where), float(entry['likelihood'])
