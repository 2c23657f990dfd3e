"""Sliding-window landmark prediction on top of nnUNetPredictor (paper §2, DESIGN.md §1).

Heatmaps stay in preprocessed space (N channels, fp16, folds averaged); only the per-channel peak is mapped
back to the original image, so memory never holds a full-resolution copy of every channel.
"""
import os
from os.path import join, isdir, isfile
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import SimpleITK as sitk
import torch
from batchgenerators.utilities.file_and_folder_operations import load_json
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
from nnunetv2.inference.sliding_window_prediction import compute_gaussian
from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
from tqdm import tqdm

from nnlandmark.errors import LandmarkError
from nnlandmark.geometry import Geometry
from nnlandmark.inference.coordinates import original_zyx_to_preprocessed, preprocessed_to_original_index
from nnlandmark.inference.peaks import channel_maxima, refine_peaks, restrict_to_balls, tiles_near_balls
from nnlandmark.inference.prediction_files import case_prediction, find_input_cases, write_json_atomic
from nnlandmark.presence import read_thresholds

ImageInput = Union[str, Sequence[str], sitk.Image, Sequence[sitk.Image]]


class LandmarkPredictor(nnUNetPredictor):
    """Build once from a trained model folder, then call :meth:`predict` per image or :meth:`predict_folder`."""

    def __init__(self, tile_step_size: float = 0.5, use_gaussian: bool = True, use_mirroring: bool = True,
                 device: torch.device = torch.device('cpu'), verbose: bool = False, allow_tqdm: bool = True,
                 subvoxel: bool = True):
        super().__init__(tile_step_size, use_gaussian, use_mirroring, perform_everything_on_device=True,
                         device=device, verbose=verbose, verbose_preprocessing=False, allow_tqdm=allow_tqdm)
        self.subvoxel = subvoxel  # False: the paper's integer argmax
        self.presence_thresholds: Optional[Dict[str, float]] = None  # from nnLandmark_calibrate; None: all present
        self.search_priors: Optional[Dict[str, Dict[str, np.ndarray]]] = None  # {case: {name: world LPS}}
        self.search_radius_mm = 20.0  # with priors: each landmark's maximum is read within this distance of its prior
        self._balls = None  # (centres, radii) in preprocessed voxels while a case with priors is predicted

    @classmethod
    def from_model_folder(cls, model_folder: str, folds: Optional[Sequence[Union[int, str]]] = None,
                          checkpoint_name: str = 'checkpoint_final.pth', **kwargs) -> "LandmarkPredictor":
        from nnlandmark.trainers import all_trainer_classes, trainer_class_by_name
        for name in ('plans.json', 'dataset.json'):
            if not isfile(join(model_folder, name)):
                raise LandmarkError(f"{join(model_folder, name)} not found: is this a trained nnlandmark model folder?")
        folds = list(folds) if folds else cls.auto_detect_available_folds(model_folder, checkpoint_name)
        if not folds:
            raise LandmarkError(f"no fold_N/{checkpoint_name} in {model_folder}: train a fold first "
                                f"(a model trained on fold 'all' is used with -f all)")
        checkpoints = [load_checkpoint(join(model_folder, f'fold_{f}', checkpoint_name)) for f in folds]
        plans_manager = PlansManager(load_json(join(model_folder, 'plans.json')))
        dataset_json = load_json(join(model_folder, 'dataset.json'))
        trainer_name = checkpoints[0].get('trainer_name')
        if trainer_name not in all_trainer_classes():
            raise LandmarkError(f"{join(model_folder, f'fold_{folds[0]}', checkpoint_name)} was trained by "
                                f"'{trainer_name}', not by an nnlandmark trainer: segmentation models are predicted "
                                f"with nnUNetv2_predict")
        configuration_manager = plans_manager.get_configuration(checkpoints[0]['init_args']['configuration'])
        network = trainer_class_by_name(trainer_name).build_network_architecture(
            plans_manager, configuration_manager,
            determine_num_input_channels(plans_manager, configuration_manager, dataset_json),
            plans_manager.get_label_manager(dataset_json).num_segmentation_heads, enable_deep_supervision=False)
        parameters = [c['network_weights'] for c in checkpoints]
        network.load_state_dict(parameters[0])
        predictor = cls(**kwargs)
        predictor.manual_initialization(network, plans_manager, configuration_manager, parameters, dataset_json,
                                        trainer_name, checkpoints[0].get('inference_allowed_mirroring_axes'))
        predictor.presence_thresholds = read_thresholds(model_folder)
        return predictor

    def _internal_maybe_mirror_and_predict(self, x: torch.Tensor) -> torch.Tensor:
        """Test-time mirroring as nnU-Net's, but a flip along the left-right axis of a dataset with ``mirror_pairs``
        also swaps the paired channels back (only those axes are allowed then)."""
        if not (self.use_mirroring and self.allowed_mirroring_axes):
            return self.network(x)
        from itertools import combinations
        from nnlandmark.trainers.mirroring import channel_permutation, mirror_pairs
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
        return {n: int(v) for n, v in self.dataset_json['labels'].items() if int(v) != 0}

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
        if self._balls is None or any(i < p for i, p in zip(image_size, self.configuration_manager.patch_size)):
            return slicers  # (nnU-Net pads images smaller than the patch, which shifts the tiles)
        return tiles_near_balls(slicers, *self._balls, image_size)

    def predict_heatmaps(self, data: torch.Tensor) -> torch.Tensor:
        """(C, *preprocessed) image -> (N, *preprocessed) heatmaps in [0, 1], averaged over the loaded folds."""
        if self.list_of_parameters is None:  # network handed over by a trainer, weights already loaded
            return self.predict_sliding_window_return_logits(data).cpu()
        return self.predict_logits_from_preprocessed_data(data)

    def predict_preprocessed(self, data: torch.Tensor, properties: dict,
                             prior: Optional[Dict[str, np.ndarray]] = None) -> Dict[str, dict]:
        """Landmarks of one preprocessed case: {name: {label, voxel, world, likelihood}} in the original image.
        ``prior`` ({name: world LPS}, e.g. a coarse model's prediction) restricts each named landmark's maximum to
        ``search_radius_mm`` around it."""
        if 'sitk_stuff' not in properties:
            raise LandmarkError("world coordinates need image geometry: use SimpleITKIO (the default for "
                                ".nii.gz/.nrrd/.mha) as the dataset's reader")
        geometry = Geometry.of_sitk_stuff(properties['sitk_stuff'])
        balls = self._search_balls(prior, geometry, data.shape[1:], properties) if prior else None
        self._balls = balls
        try:
            heat = self.predict_heatmaps(data)
        finally:
            self._balls = None
        if balls:
            names = list(self.landmark_labels)
            with torch.inference_mode():  # heat is an inference tensor: changed in place only in that mode
                for channel in restrict_to_balls(heat, *balls):
                    print(f"WARNING: the prior of landmark '{names[channel]}' lies more than "
                          f"{self.search_radius_mm} mm outside the image; searched the whole image")
        peaks, likelihood = channel_maxima(heat)
        if self.subvoxel:
            peaks = refine_peaks(heat, peaks)
        index = preprocessed_to_original_index(peaks, heat.shape[1:], properties, self.plans_manager.transpose_backward)
        world = geometry.index_to_world(index)
        thresholds = self.presence_thresholds or {}
        return {name: {'label': label, 'voxel': index[i].tolist(), 'world': world[i].tolist(),
                       'likelihood': float(likelihood[i]), 'present': bool(likelihood[i] >= thresholds.get(name, 0.0))}
                for i, (name, label) in enumerate(self.landmark_labels.items())}

    def _search_balls(self, prior: Dict[str, np.ndarray], geometry: Geometry, shape, properties: dict):
        """Each landmark's prior (world LPS; missing: NaN) as a centre in preprocessed voxels, and the search radius
        in voxels along each axis."""
        world = np.array([prior.get(n, [np.nan] * 3) for n in self.landmark_labels], float)
        zyx = geometry.world_to_index(world)[:, ::-1]
        centres = original_zyx_to_preprocessed(zyx, shape, properties, self.plans_manager.transpose_forward)
        return centres, self.search_radius_mm / np.asarray(self.configuration_manager.spacing, float)

    def predict(self, image: ImageInput, case: Optional[str] = None) -> dict:
        """One case from a file path (or one path per channel) or a SimpleITK image -> the prediction dict."""
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
        prior = None
        if self.search_priors is not None:
            if case not in self.search_priors:
                raise LandmarkError(f"case '{case or source}' has no prior positions (--search_around)")
            prior = self.search_priors[case]
        landmarks = self.predict_preprocessed(torch.from_numpy(data), properties, prior)
        return case_prediction(case or source, source, landmarks)

    def predict_folder(self, input_dir: str, output_dir: str, continue_prediction: bool = False) -> List[str]:
        """Every case in an nnU-Net style input folder (CASE_0000.ext, ...) -> OUTPUT_DIR/CASE.json."""
        if not isdir(input_dir):
            raise LandmarkError(f"input folder {input_dir} does not exist")
        n_channels = determine_num_input_channels(self.plans_manager, self.configuration_manager, self.dataset_json)
        cases = find_input_cases(input_dir, self.dataset_json['file_ending'], n_channels)
        os.makedirs(output_dir, exist_ok=True)
        written = []
        for case, files in tqdm(cases.items(), desc='cases', disable=not self.allow_tqdm):
            target = join(output_dir, f'{case}.json')
            if not (continue_prediction and isfile(target)):
                write_json_atomic(self.predict(files, case=case), target)
            written.append(target)
        return written


def load_checkpoint(path: str) -> dict:
    if not isfile(path):
        raise LandmarkError(f"checkpoint {path} not found: train this fold first or pick another with -f/-chk")
    try:
        checkpoint = torch.load(path, map_location='cpu', weights_only=False)
    except Exception as e:  # truncated or not a torch file
        raise LandmarkError(f"checkpoint {path} cannot be read ({type(e).__name__}); it may be truncated") from e
    if not isinstance(checkpoint, dict) or 'network_weights' not in checkpoint:
        raise LandmarkError(f"{path} is not an nnU-Net checkpoint")
    return checkpoint


def images_to_nnunet_array(images: Sequence[sitk.Image]):
    """SimpleITK image(s) -> (C, z, y, x) float32 array and properties, exactly as nnU-Net's SimpleITKIO."""
    reference = images[0]
    data = np.stack([sitk.GetArrayFromImage(i) for i in images]).astype(np.float32)
    properties = {'sitk_stuff': {'spacing': reference.GetSpacing(), 'origin': reference.GetOrigin(),
                                 'direction': reference.GetDirection()},
                  'spacing': list(reference.GetSpacing())[::-1]}
    return data, properties
