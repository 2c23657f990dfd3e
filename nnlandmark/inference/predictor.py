"""Sliding-window landmark prediction on top of nnUNetPredictor (paper §2, docs/design.md).

Heatmaps stay in preprocessed space (N channels, fp16, folds averaged); only the per-channel peak is mapped
back to the original image, so memory never holds a full-resolution copy of every channel. Everything the
``nnLandmark_predict`` command does is one call of :meth:`LandmarkPredictor.predict_folder`.
"""
import os
from concurrent.futures import ThreadPoolExecutor
from copy import copy
from dataclasses import dataclass
from itertools import combinations, islice
from os.path import isfile, join
from typing import Dict, List, Optional, Sequence, Tuple, Union

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
from nnlandmark.geometry import (Geometry, as_volume, preprocessed_spacing, preprocessed_to_original_index,
                                 world_to_preprocessed)
from nnlandmark.heatmaps import (INSTANCE_REFINE_RADIUS, channel_maxima, instance_peaks, peak_shape, refine_peaks,
                                 restrict_to_balls, suppressed, tiles_near_balls)
from nnlandmark.io.atomic import read_json, write_json_atomic
from nnlandmark.io.images import RASTER_ENDINGS, images_to_nnunet_array, input_cases, read_image
from nnlandmark.io.predictions import (REVIEW_CSV, Points, case_prediction, parse_formats, read_prediction,
                                       write_prediction_formats, write_review_list)
from nnlandmark.labelmaps import write_prediction_labelmap
from nnlandmark.landmark_set import (MAX_INSTANCES, channel_permutation, landmark_labels, mirror_pairs,
                                     multi_instance, read_dataset_json)
from nnlandmark.network import build_network_for, load_checkpoint, torch_device
from nnlandmark.paths import writable_folder
from nnlandmark.presence import read_instance_detection, read_thresholds, uncalibrated_instances
from nnlandmark.uncertainty import ErrorModel, read_error_model

ImageInput = Union[str, Sequence[str], sitk.Image, Sequence[sitk.Image]]
SearchRadius = Union[float, Dict[str, float]]   # mm, one for all landmarks or per landmark
SEARCH_RADIUS_MM = 20.0


@dataclass(frozen=True)
class Search:
    """Read each landmark only near a prior position (a coarse stage's landmark): within ``radius_mm`` of
    ``priors[case][name]`` (world LPS); with ``fallback_below``, a weaker maximum there keeps the prior."""
    priors: Points
    radius_mm: SearchRadius = SEARCH_RADIUS_MM
    fallback_below: Optional[float] = None


class LandmarkPredictor(nnUNetPredictor):
    """Build once from a trained model folder, then call :meth:`predict` per image or :meth:`predict_folder`."""

    def __init__(self, tile_step_size: float = 0.5, use_gaussian: bool = True, use_mirroring: bool = True,
                 device: torch.device = torch.device('cpu'), verbose: bool = False, allow_tqdm: bool = True,
                 subvoxel: bool = True, presence_thresholds: Optional[Dict[str, float]] = None,
                 error_model: Optional[ErrorModel] = None,
                 instance_detection: Optional[Dict[str, Tuple[float, float]]] = None):
        torch_device(device.type)  # a device this machine has, or one clear line
        super().__init__(tile_step_size, use_gaussian, use_mirroring, perform_everything_on_device=True,
                         device=device, verbose=verbose, verbose_preprocessing=False, allow_tqdm=allow_tqdm)
        self.subvoxel = subvoxel  # False: the paper's integer argmax
        self.presence_thresholds = presence_thresholds  # {name: likelihood} (nnLandmark_calibrate); None: all present
        self.error_model = error_model  # expected_error_mm and radius_mm (nnLandmark_calibrate); None: null fields
        # {class: (likelihood threshold, NMS distance mm)} of the multi-instance classes (calibrated on CV); a class
        # not in it: presence.uncalibrated_instances
        self.instance_detection = instance_detection or {}
        self.tile_balls = None  # set only on the short-lived copy that reads one case around priors (_searching)

    @classmethod
    def from_model_folder(cls, model_folder: str, folds: Optional[Sequence[Union[int, str]]] = None,
                          checkpoint_name: str = 'checkpoint_final.pth', trust_checkpoint: bool = False,
                          **kwargs) -> "LandmarkPredictor":
        """The folds (default: all trained) of a model folder; ``presence_thresholds`` and ``error_model`` default to
        the model's calibration (landmark_thresholds.json, landmark_uncertainty.json). ``trust_checkpoint`` also loads
        checkpoints that hold more than weights and numbers (unpickling them can run code). Other keyword arguments
        go to the constructor."""
        for name in ('plans.json', 'dataset.json'):
            if not isfile(join(model_folder, name)):
                raise LandmarkError(f"{join(model_folder, name)} not found: is this a trained nnlandmark model folder?")
        dataset_json = read_dataset_json(join(model_folder, 'dataset.json'))
        plans_manager = PlansManager(read_json(join(model_folder, 'plans.json'), "plans file"))
        if 'presence_thresholds' not in kwargs:
            kwargs['presence_thresholds'] = read_thresholds(model_folder)
        if 'error_model' not in kwargs:
            kwargs['error_model'] = read_error_model(model_folder)
        if 'instance_detection' not in kwargs:
            kwargs['instance_detection'] = read_instance_detection(model_folder)
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
    def radius_coverage(self) -> Optional[float]:
        return self.error_model.coverage if self.error_model else None

    @property
    def landmark_labels(self) -> Dict[str, int]:
        """Every channel's name and label, in channel order (landmarks and multi-instance classes)."""
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
        patch = self.configuration_manager.patch_size   # (2D for a 2d configuration, after the slice axis)
        if self.tile_balls is None or any(i < p for i, p in zip(image_size[-len(patch):], patch)):
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
                             search_radius_mm: SearchRadius = SEARCH_RADIUS_MM,
                             fallback_below: Optional[float] = None,
                             heatmap_file: Optional[str] = None) -> Tuple[Dict[str, dict], Optional[dict]]:
        """Landmarks of one preprocessed case: {name: {label, voxel, world, likelihood, present}} in the original
        image, and the instances of the multi-instance classes ({class: [{voxel, world, likelihood}, ...]}, None for
        a model without such classes). ``prior`` ({name: world LPS}, e.g. a coarse model's prediction) restricts each
        named landmark's maximum to ``search_radius_mm`` (one radius, or {name: mm}) around it. With
        ``fallback_below``, a landmark whose maximum there is weaker keeps its prior position, and every landmark with
        a prior says which it is (``"stage": "fine"`` or ``"coarse"``). ``heatmap_file``: also write the
        (N, *preprocessed) fp16 heatmaps as read (-1 outside the search balls) to that .npz, with the landmark names
        and the preprocessed spacing."""
        if 'sitk_stuff' not in properties:
            raise LandmarkError("world coordinates need image geometry: use SimpleITKIO (the default for "
                                ".nii.gz/.nrrd/.mha) as the dataset's reader")
        geometry = Geometry.of_sitk_stuff(properties['sitk_stuff'])
        spacing = preprocessed_spacing(self.configuration_manager.spacing, properties,
                                       self.plans_manager.transpose_forward)
        names = list(self.landmark_labels)
        balls, prior_world = None, None
        if prior:
            prior_world = np.array([prior.get(n, [np.nan] * 3) for n in names], float)
            radius_mm = np.array([search_radius_mm.get(n, SEARCH_RADIUS_MM) if isinstance(search_radius_mm, dict)
                                  else search_radius_mm for n in names], float)
            balls = (world_to_preprocessed(prior_world, geometry, data.shape[1:], properties,
                                           self.plans_manager.transpose_forward),
                     radius_mm[:, None] / spacing[None, :])
        heat = self.predict_heatmaps(data, balls)
        if balls:
            with torch.inference_mode():  # heat is an inference tensor: changed in place only in that mode
                for channel in restrict_to_balls(heat, *balls):
                    print(f"WARNING: the prior of landmark '{names[channel]}' lies more than "
                          f"{radius_mm[channel]:.1f} mm outside the image; searched the whole image")
        if heatmap_file:
            np.savez_compressed(heatmap_file, heatmaps=heat.cpu().numpy().astype(np.float16), landmarks=names,
                                spacing=spacing)
        peaks, likelihood = channel_maxima(heat)
        half_max_radius, second_peak = peak_shape(heat, peaks, spacing)
        if self.subvoxel:
            peaks = refine_peaks(heat, peaks)
        index = preprocessed_to_original_index(peaks, heat.shape[1:], properties, self.plans_manager.transpose_backward)
        world = geometry.index_to_world(index)
        prior_distance = np.linalg.norm(world - prior_world, axis=1) if prior_world is not None else \
            np.full(len(names), np.nan)
        stage = [None] * len(names)
        if fallback_below is not None and prior_world is not None:
            has_prior = ~np.isnan(prior_world).any(1)
            weak = has_prior & (likelihood < fallback_below)
            world[weak], index[weak] = prior_world[weak], geometry.world_to_index(prior_world[weak])
            stage = [('coarse' if weak[i] else 'fine') if has_prior[i] else None for i in range(len(names))]
        thresholds = self.presence_thresholds or {}
        classes = multi_instance(self.dataset_json)
        instances = {name: self._instances(name, heat[names.index(name)], properties, geometry) for name in classes}
        landmarks = {name: {'label': label, 'voxel': index[i].tolist(), 'world': world[i].tolist(),
                            'likelihood': float(likelihood[i]),
                            'present': bool(likelihood[i] >= thresholds.get(name, 0.0)),
                            **({'stage': stage[i]} if stage[i] else {}),
                            'peak': {'half_max_radius_mm': float(half_max_radius[i]),
                                     'second_peak': float(second_peak[i]),
                                     'prior_distance_mm': None if np.isnan(prior_distance[i])
                                     else float(prior_distance[i])}}
                     for i, (name, label) in enumerate(self.landmark_labels.items()) if name not in classes}
        estimates = self.error_model.estimate(landmarks) if self.error_model else {}
        for name, entry in landmarks.items():
            entry['expected_error_mm'], entry['radius_mm'] = estimates.get(name, (None, None))
        return landmarks, (instances if classes else None)

    def _instances(self, name: str, channel: torch.Tensor, properties: dict, geometry: Geometry) -> List[dict]:
        """A multi-instance class's peaks above its threshold, each refined to sub-voxel as a landmark is, then those
        that non-maximum suppression keeps at its distance in world mm (as calibrated), strongest first."""
        threshold, nms_mm = self.instance_detection.get(
            name, uncalibrated_instances(self.configuration_manager.spacing))   # in-plane only for a 2d one
        peaks, likelihood = instance_peaks(channel, threshold)
        if self.subvoxel and len(peaks):
            peaks = refine_peaks(channel[None].expand(len(peaks), *channel.shape), peaks, INSTANCE_REFINE_RADIUS)
        index = preprocessed_to_original_index(peaks.astype(float), channel.shape, properties,
                                               self.plans_manager.transpose_backward)
        world = geometry.index_to_world(index)
        return [{'voxel': index[k].tolist(), 'world': world[k].tolist(), 'likelihood': float(likelihood[k])}
                for k in suppressed(world, likelihood, nms_mm)[:MAX_INSTANCES]]

    def predict(self, image: ImageInput, case: Optional[str] = None, prior: Optional[Dict[str, np.ndarray]] = None,
                search_radius_mm: SearchRadius = SEARCH_RADIUS_MM, fallback_below: Optional[float] = None) -> dict:
        """One case from a file path (or one path per channel) or a SimpleITK image -> the prediction dict (the
        CASE.json schema); ``prior`` as in :meth:`predict_preprocessed`."""
        images = [image] if isinstance(image, (str, os.PathLike, sitk.Image)) else list(image)
        expected = determine_num_input_channels(self.plans_manager, self.configuration_manager, self.dataset_json)
        if len(images) != expected:
            raise LandmarkError(f"the model expects {expected} channel(s) per case, got {len(images)}")
        source = '<SimpleITK image>' if isinstance(images[0], sitk.Image) else os.path.basename(str(images[0]))
        data, properties = self._preprocess(images)
        landmarks, instances = self.predict_preprocessed(data, properties, prior, search_radius_mm, fallback_below)
        return case_prediction(case or source, source, landmarks, self.radius_coverage, instances)

    @property
    def planar(self) -> bool:
        """A model of 2D images (nnU-Net's 2d configuration): its inputs may be 2D files, read as volumes of one
        slice as the converter wrote its training images."""
        return len(self.configuration_manager.patch_size) == 2

    def _preprocess(self, images: Sequence, pixel_spacing: Optional[Sequence[float]] = None
                    ) -> Tuple[torch.Tensor, dict]:
        """nnU-Net's preprocessing of one case's files or SimpleITK images, in this process; ``pixel_spacing``
        (x, y mm) replaces that of 2D images."""
        preprocessor = self.configuration_manager.preprocessor_class(verbose=False)
        args = (self.plans_manager, self.configuration_manager, self.dataset_json)
        if self.planar:
            images = [as_volume(i if isinstance(i, sitk.Image) else read_image(i, planar=True), pixel_spacing)
                      for i in images]
        if isinstance(images[0], sitk.Image):
            data, properties = images_to_nnunet_array(images)
            data, _, properties = preprocessor.run_case_npy(data, None, properties, *args)
        else:
            data, _, properties = preprocessor.run_case([str(i) for i in images], None, *args)
        return _finite(torch.from_numpy(data), images), properties

    def _preprocessed_cases(self, cases: Dict[str, List[str]], workers: int,
                            pixel_spacing: Optional[Sequence[float]] = None):
        """(case, data, properties) of each case in order; with ``workers`` > 0, that many threads preprocess the
        next cases while the network runs (nnU-Net's preprocessing and torch release the GIL for most of their work).
        Threads, not nnU-Net's spawned worker processes: those start slowly (each imports torch and nnU-Net) and print
        tracebacks when a run is interrupted."""
        if workers == 0 or len(cases) < 2:
            for case, files in cases.items():
                yield (case, *self._preprocess(files, pixel_spacing))
            return
        order = iter(cases.items())
        first, files = next(order)
        # the first case in this thread: ITK creates its global singletons lazily and without a lock, and threads
        # racing to create them corrupted a map that then hung the process at exit (seen 2026-12-02, gdb stack)
        first_case = (first, *self._preprocess(files, pixel_spacing))
        pool = ThreadPoolExecutor(workers)
        try:
            pending = {case: pool.submit(self._preprocess, files, pixel_spacing)
                       for case, files in islice(order, workers + 1)}
            yield first_case
            for case in list(cases)[1:]:
                data, properties = pending.pop(case).result()
                for next_case, files in islice(order, 1):   # keep workers + 1 cases in flight, no more in memory
                    pending[next_case] = pool.submit(self._preprocess, files, pixel_spacing)
                yield case, data, properties
        finally:   # an interrupted run does not preprocess the cases still queued
            pool.shutdown(wait=True, cancel_futures=True)

    def check_pixel_spacing(self, files: Sequence[str], pixel_spacing: Optional[Sequence[float]]) -> None:
        """A PNG (or JPEG, BMP) holds no pixel spacing, and one guessed wrong scales every distance the model sees:
        such inputs need ``pixel_spacing``, which only 2D images take."""
        if pixel_spacing is not None and not self.planar:
            raise LandmarkError("--spacing sets the pixel spacing of 2D images; this model reads 3D volumes")
        raster = next((f for f in files if str(f).lower().endswith(RASTER_ENDINGS)), None)
        if raster and pixel_spacing is None:
            trained = " x ".join(f"{s:g}" for s in self.configuration_manager.spacing[::-1])
            raise LandmarkError(f"{raster} carries no pixel spacing: give --spacing SX SY in mm (the model was "
                                f"trained at {trained} mm per pixel)")

    def check_review(self, review_mm: Optional[float]) -> None:
        """A review list needs error estimates: refused before any case is predicted where the model has none."""
        if review_mm is not None and self.error_model is None:
            raise LandmarkError("--review needs a calibrated model (expected_error_mm): run nnLandmark_calibrate on "
                                "its cross-validation first")

    def predict_folder(self, input_dir: Union[str, Sequence[str]], output_dir: str, search: Optional[Search] = None,
                       formats: Union[str, Sequence[str]] = 'json', save_labelmap: bool = False, qc: bool = False,
                       continue_prediction: bool = False, num_parts: int = 1, part_id: int = 0,
                       num_processes_preprocessing: int = 0, num_processes_export: int = 1,
                       review_mm: Optional[float] = None, pixel_spacing: Optional[Sequence[float]] = None) -> List[str]:
        """Every case in an nnU-Net style input folder (CASE_0000.ext, ...), or of a list of image files (one case
        each, single-channel models) -> OUTPUT_DIR/CASE.json, plus CASE.mrk.json / CASE.fcsv / CASE.csv for the other
        ``formats``, CASE<file_ending> (a cube per landmark on the input grid) with ``save_labelmap`` and qc/CASE.png
        with ``qc``. ``search`` reads each landmark near its prior (every case needs one). ``continue_prediction``
        keeps the CASE.json files already there; ``num_parts``/``part_id`` predict every num_parts-th case from
        part_id on (nnU-Net's way to split a cohort over machines); ``num_processes_preprocessing`` threads preprocess
        the next cases and ``num_processes_export`` threads write the files while the network runs (nnU-Net's -npp /
        -nps). ``review_mm``: OUTPUT_DIR/review.csv lists the landmarks whose expected error exceeds it, worst first,
        and the Slicer files flag them (the model must be calibrated). A model of 2D images also reads 2D files (PNG
        ...), whose pixel spacing ``pixel_spacing`` (x, y mm) gives where the format has none. Returns the CASE.json
        paths."""
        formats = parse_formats(formats if isinstance(formats, str) else ",".join(formats))
        self.check_review(review_mm)
        writable_folder(output_dir, "output folder -o")
        ending = self.dataset_json['file_ending']
        n_channels = determine_num_input_channels(self.plans_manager, self.configuration_manager, self.dataset_json)
        if not 0 <= part_id < num_parts:
            raise LandmarkError(f"-part_id must lie in 0..{num_parts - 1} for -num_parts {num_parts}, got {part_id}")
        cases = dict(list(input_cases(input_dir, ending, n_channels, self.planar).items())[part_id::num_parts])
        self.check_pixel_spacing([p for files in cases.values() for p in files], pixel_spacing)
        without_prior = sorted(set(cases) - set(search.priors)) if search is not None else []
        if without_prior:
            raise LandmarkError(f"case '{without_prior[0]}' has no prior positions (-prev_stage_predictions)")
        os.makedirs(output_dir, exist_ok=True)
        targets = {case: join(output_dir, f'{case}.json') for case in cases}
        done = [c for c in cases if continue_prediction and isfile(targets[c])]
        todo = {c: files for c, files in cases.items() if c not in done}

        def export(case: str, prediction: dict, write: bool) -> None:
            if write:
                write_json_atomic(prediction, targets[case])
            write_prediction_formats(prediction, output_dir, formats, review_mm)
            if save_labelmap:
                write_prediction_labelmap(prediction, cases[case][0], join(output_dir, case + ending),
                                          self.landmark_labels)

        with ThreadPoolExecutor(max(1, num_processes_export)) as pool, \
                tqdm(total=len(cases), desc='cases', disable=not self.allow_tqdm) as bar:
            exports = [pool.submit(export, case, read_prediction(targets[case]), False) for case in done]
            bar.update(len(done))
            for case, data, properties in self._preprocessed_cases(todo, num_processes_preprocessing, pixel_spacing):
                landmarks, instances = self.predict_preprocessed(data, properties, *(() if search is None else (
                    search.priors[case], search.radius_mm, search.fallback_below)))
                source = os.path.basename(cases[case][0])
                exports.append(pool.submit(export, case, case_prediction(case, source, landmarks,
                                                                         self.radius_coverage, instances), True))
                bar.update()
            for future in exports:
                future.result()   # an export's error, raised here
        if review_mm is not None:
            flagged = write_review_list([read_prediction(t) for t in targets.values()], review_mm,
                                        join(output_dir, REVIEW_CSV))
            print(f"{flagged} landmark(s) with an expected error above {review_mm:g} mm: "
                  f"{join(output_dir, REVIEW_CSV)}")
        if qc:
            qc_for_predictions(output_dir, {case: files[0] for case, files in cases.items()})
        return list(targets.values())


def _finite(data: torch.Tensor, images: Sequence) -> torch.Tensor:
    if not torch.isfinite(data).all():
        where = '<SimpleITK image>' if isinstance(images[0], sitk.Image) else ", ".join(str(i) for i in images)
        raise LandmarkError(f"image {where} contains NaN or infinite values")
    return data
