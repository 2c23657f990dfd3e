"""Sliding-window landmark prediction on top of nnUNetPredictor (paper §2, docs/design.md).

Heatmaps stay in preprocessed space (N channels, fp16, folds averaged); only the per-channel peak is mapped
back to the original image, so memory never holds a full-resolution copy of every channel. Everything the
``nnLandmark_predict`` command does is one call of :meth:`LandmarkPredictor.predict_folder`.
"""
import os
from copy import copy
from itertools import combinations
from os.path import isfile, join
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import SimpleITK as sitk
import torch
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
from nnunetv2.inference.sliding_window_prediction import compute_gaussian
from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
from tqdm import tqdm

from nnlandmark.errors import LandmarkError
from nnlandmark.evaluation.qc import qc_for_predictions
from nnlandmark.geometry import Geometry, preprocessed_to_original_index, world_to_preprocessed
from nnlandmark.heatmaps import channel_maxima, refine_peaks, restrict_to_balls, tiles_near_balls
from nnlandmark.io.atomic import read_json, write_json_atomic
from nnlandmark.io.images import find_input_cases, images_to_nnunet_array
from nnlandmark.io.predictions import (Points, case_prediction, parse_formats, read_prediction,
                                       write_prediction_formats)
from nnlandmark.labelmaps import write_prediction_labelmap
from nnlandmark.landmark_set import channel_permutation, landmark_labels, mirror_pairs, read_dataset_json
from nnlandmark.network import build_network_for, load_checkpoint
from nnlandmark.paths import writable_folder
from nnlandmark.presence import read_thresholds

ImageInput = Union[str, Sequence[str], sitk.Image, Sequence[sitk.Image]]
SEARCH_RADIUS_MM = 20.0


class LandmarkPredictor(nnUNetPredictor):
    """Build once from a trained model folder, then call :meth:`predict` per image or :meth:`predict_folder`."""

    def __init__(self, tile_step_size: float = 0.5, use_gaussian: bool = True, use_mirroring: bool = True,
                 device: torch.device = torch.device('cpu'), verbose: bool = False, allow_tqdm: bool = True,
                 subvoxel: bool = True, presence_thresholds: Optional[Dict[str, float]] = None):
        if device.type == 'cuda' and not torch.cuda.is_available():
            raise LandmarkError("-device cuda requested but no CUDA GPU is available; use -device cpu")
        super().__init__(tile_step_size, use_gaussian, use_mirroring, perform_everything_on_device=True,
                         device=device, verbose=verbose, verbose_preprocessing=False, allow_tqdm=allow_tqdm)
        self.subvoxel = subvoxel  # False: the paper's integer argmax
        self.presence_thresholds = presence_thresholds  # {name: likelihood} (nnLandmark_calibrate); None: all present
        self.tile_balls = None  # set only on the short-lived copy that reads one case around priors (_searching)

    @classmethod
    def from_model_folder(cls, model_folder: str, folds: Optional[Sequence[Union[int, str]]] = None,
                          checkpoint_name: str = 'checkpoint_final.pth', trust_checkpoint: bool = False,
                          **kwargs) -> "LandmarkPredictor":
        """The folds (default: all trained) of a model folder; ``presence_thresholds`` default to the model's
        calibration (landmark_thresholds.json). ``trust_checkpoint`` also loads checkpoints that hold more than
        weights and numbers (unpickling them can run code). Other keyword arguments go to the constructor."""
        for name in ('plans.json', 'dataset.json'):
            if not isfile(join(model_folder, name)):
                raise LandmarkError(f"{join(model_folder, name)} not found: is this a trained nnlandmark model folder?")
        dataset_json = read_dataset_json(join(model_folder, 'dataset.json'))
        plans_manager = PlansManager(read_json(join(model_folder, 'plans.json'), "plans file"))
        if 'presence_thresholds' not in kwargs:
            kwargs['presence_thresholds'] = read_thresholds(model_folder)
        predictor = cls(**kwargs)  # checks the settings before the checkpoints are read
        folds = list(folds) if folds else cls.auto_detect_available_folds(model_folder, checkpoint_name)
        if not folds:
            raise LandmarkError(f"no fold_N/{checkpoint_name} in {model_folder}: train a fold first "
                                f"(a model trained on fold 'all' is used with -f all)")
        checkpoints = [load_checkpoint(join(model_folder, f'fold_{f}', checkpoint_name), trust_checkpoint)
                       for f in folds]
        configuration_manager = plans_manager.get_configuration(checkpoints[0]['init_args']['configuration'])
        network = build_network_for(plans_manager, configuration_manager, dataset_json)
        parameters = [c['network_weights'] for c in checkpoints]
        network.load_state_dict(parameters[0])
        predictor.manual_initialization(network, plans_manager, configuration_manager, parameters, dataset_json,
                                        checkpoints[0]['trainer_name'],
                                        checkpoints[0].get('inference_allowed_mirroring_axes'))
        return predictor

    def _internal_maybe_mirror_and_predict(self, x: torch.Tensor) -> torch.Tensor:
        """Test-time mirroring as nnU-Net's, but a flip along the left-right axis of a dataset with ``mirror_pairs``
        also swaps the paired channels back (only those axes are allowed then)."""
        if not (self.use_mirroring and self.allowed_mirroring_axes):
            return self.network(x)
        swap = channel_permutation(self.dataset_json) if mirror_pairs(self.dataset_json) else None
        axes = [a + 2 for a in self.allowed_mirroring_axes]
        combos = [c for i in range(len(axes)) for c in combinations(axes, i + 1)]
        prediction = self.network(x)
        for flip in combos:
            mirrored = torch.flip(self.network(torch.flip(x, flip)), flip)
            prediction += mirrored[:, swap] if swap is not None else mirrored
        return prediction / (len(combos) + 1)

    @property
    def landmark_labels(self) -> Dict[str, int]:
        return landmark_labels(self.dataset_json)

    @torch.inference_mode()
    def _internal_predict_sliding_window_return_logits(self, data: torch.Tensor, slicers, do_on_device: bool = True):
        """Gaussian-weighted average of sigmoid heatmaps over tiles, N channels (nnU-Net's version allocates
        N + 1 softmax channels)."""
        results_device = self.device if do_on_device else torch.device('cpu')
        data = data.to(results_device)
        shape = data.shape[1:]
        heat = torch.zeros((len(self.landmark_labels), *shape), dtype=torch.half, device=results_device)
        weight = torch.zeros(shape, dtype=torch.half, device=results_device)
        patch_size = tuple(self.configuration_manager.patch_size)
        gaussian = compute_gaussian(patch_size, sigma_scale=1. / 8, value_scaling_factor=10, device=results_device) \
            if self.use_gaussian else torch.ones(patch_size, device=results_device)
        for sl in tqdm(slicers, desc='tiles', disable=not self.allow_tqdm or len(slicers) < 2, leave=False):
            tile = data[sl][None].to(self.device)
            probabilities = torch.sigmoid(self._internal_maybe_mirror_and_predict(tile)[0].float())
            heat[sl] += (probabilities.to(results_device) * gaussian).half()
            weight[sl[1:]] += gaussian.half()
        return heat.div_(weight)  # 0/0 = NaN where no tile ran: only outside every search ball (tiles_near_balls)

    def _internal_get_sliding_window_slicers(self, image_size):
        """nnU-Net's tiles; while searching around priors, only those that overlap a search ball."""
        slicers = super()._internal_get_sliding_window_slicers(image_size)
        if self.tile_balls is None or any(i < p for i, p in zip(image_size, self.configuration_manager.patch_size)):
            return slicers  # (nnU-Net pads images smaller than the patch, which shifts the tiles)
        return tiles_near_balls(slicers, *self.tile_balls, image_size)

    def _searching(self, balls) -> "LandmarkPredictor":
        """A shallow copy that runs only the tiles near ``balls``: nnU-Net picks the tiles inside its sliding-window
        call, and the copy carries the balls into that one call without this predictor keeping per-call state."""
        searcher = copy(self)
        searcher.tile_balls = balls
        return searcher

    def predict_heatmaps(self, data: torch.Tensor, balls=None) -> torch.Tensor:
        """(C, *preprocessed) image -> (N, *preprocessed) heatmaps in [0, 1], averaged over the loaded folds; with
        ``balls`` (centres, radii in preprocessed voxels) only the tiles that overlap them run."""
        predictor = self if balls is None else self._searching(balls)
        if self.list_of_parameters is None:  # network handed over by a trainer, weights already loaded
            return predictor.predict_sliding_window_return_logits(data).cpu()
        return predictor.predict_logits_from_preprocessed_data(data)

    def predict_preprocessed(self, data: torch.Tensor, properties: dict, prior: Optional[Dict[str, np.ndarray]] = None,
                             search_radius_mm: float = SEARCH_RADIUS_MM) -> Dict[str, dict]:
        """Landmarks of one preprocessed case: {name: {label, voxel, world, likelihood, present}} in the original
        image. ``prior`` ({name: world LPS}, e.g. a coarse model's prediction) restricts each named landmark's maximum
        to ``search_radius_mm`` around it."""
        if 'sitk_stuff' not in properties:
            raise LandmarkError("world coordinates need image geometry: use SimpleITKIO (the default for "
                                ".nii.gz/.nrrd/.mha) as the dataset's reader")
        geometry = Geometry.of_sitk_stuff(properties['sitk_stuff'])
        balls = None
        if prior:
            world = np.array([prior.get(n, [np.nan] * 3) for n in self.landmark_labels], float)
            balls = (world_to_preprocessed(world, geometry, data.shape[1:], properties,
                                           self.plans_manager.transpose_forward),
                     search_radius_mm / np.asarray(self.configuration_manager.spacing, float))
        heat = self.predict_heatmaps(data, balls)
        if balls:
            names = list(self.landmark_labels)
            with torch.inference_mode():  # heat is an inference tensor: changed in place only in that mode
                for channel in restrict_to_balls(heat, *balls):
                    print(f"WARNING: the prior of landmark '{names[channel]}' lies more than "
                          f"{search_radius_mm} mm outside the image; searched the whole image")
        peaks, likelihood = channel_maxima(heat)
        if self.subvoxel:
            peaks = refine_peaks(heat, peaks)
        index = preprocessed_to_original_index(peaks, heat.shape[1:], properties, self.plans_manager.transpose_backward)
        world = geometry.index_to_world(index)
        thresholds = self.presence_thresholds or {}
        return {name: {'label': label, 'voxel': index[i].tolist(), 'world': world[i].tolist(),
                       'likelihood': float(likelihood[i]), 'present': bool(likelihood[i] >= thresholds.get(name, 0.0))}
                for i, (name, label) in enumerate(self.landmark_labels.items())}

    def predict(self, image: ImageInput, case: Optional[str] = None, prior: Optional[Dict[str, np.ndarray]] = None,
                search_radius_mm: float = SEARCH_RADIUS_MM) -> dict:
        """One case from a file path (or one path per channel) or a SimpleITK image -> the prediction dict (the
        CASE.json schema); ``prior`` as in :meth:`predict_preprocessed`."""
        images = [image] if isinstance(image, (str, os.PathLike, sitk.Image)) else list(image)
        expected = determine_num_input_channels(self.plans_manager, self.configuration_manager, self.dataset_json)
        if len(images) != expected:
            raise LandmarkError(f"the model expects {expected} channel(s) per case, got {len(images)}")
        preprocessor = self.configuration_manager.preprocessor_class(verbose=False)
        args = (self.plans_manager, self.configuration_manager, self.dataset_json)
        if isinstance(images[0], sitk.Image):
            data, properties = images_to_nnunet_array(images)
            data, _, properties = preprocessor.run_case_npy(data, None, properties, *args)
            source = '<SimpleITK image>'
        else:
            data, _, properties = preprocessor.run_case([str(i) for i in images], None, *args)
            source = os.path.basename(str(images[0]))
        if not np.all(np.isfinite(data)):
            where = source if isinstance(images[0], sitk.Image) else ", ".join(str(i) for i in images)
            raise LandmarkError(f"image {where} contains NaN or infinite values")
        landmarks = self.predict_preprocessed(torch.from_numpy(data), properties, prior, search_radius_mm)
        return case_prediction(case or source, source, landmarks)

    def predict_folder(self, input_dir: str, output_dir: str, priors: Optional[Points] = None,
                       search_radius_mm: float = SEARCH_RADIUS_MM, formats: Union[str, Sequence[str]] = 'json',
                       save_labelmap: bool = False, qc: bool = False, continue_prediction: bool = False) -> List[str]:
        """Every case in an nnU-Net style input folder (CASE_0000.ext, ...) -> OUTPUT_DIR/CASE.json, plus
        CASE.mrk.json / CASE.fcsv / CASE.csv for the other ``formats``, CASE<file_ending> (a cube per landmark on the
        input grid) with ``save_labelmap`` and qc/CASE.png with ``qc``. ``priors`` {case: {name: world LPS}} search
        each landmark within ``search_radius_mm`` of its prior (every case needs one). ``continue_prediction`` keeps
        the CASE.json files already there. Returns the CASE.json paths."""
        formats = parse_formats(formats if isinstance(formats, str) else ",".join(formats))
        writable_folder(output_dir, "output folder -o")
        ending = self.dataset_json['file_ending']
        n_channels = determine_num_input_channels(self.plans_manager, self.configuration_manager, self.dataset_json)
        cases = find_input_cases(input_dir, ending, n_channels)
        without_prior = sorted(set(cases) - set(priors)) if priors is not None else []
        if without_prior:
            raise LandmarkError(f"case '{without_prior[0]}' has no prior positions (--search_around)")
        os.makedirs(output_dir, exist_ok=True)
        written = []
        for case, files in tqdm(cases.items(), desc='cases', disable=not self.allow_tqdm):
            target = join(output_dir, f'{case}.json')
            if continue_prediction and isfile(target):
                prediction = read_prediction(target)
            else:
                prediction = self.predict(files, case, priors[case] if priors is not None else None,
                                          search_radius_mm)
                write_json_atomic(prediction, target)
            write_prediction_formats(prediction, output_dir, formats)
            if save_labelmap:
                write_prediction_labelmap(prediction, files[0], join(output_dir, case + ending))
            written.append(target)
        if qc:
            qc_for_predictions(output_dir, input_dir, ending, list(cases))
        return written
