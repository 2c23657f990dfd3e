"""nnU-Net trainer turned landmark detector: N sigmoid heatmap channels, EDT targets, BCE top-k (paper §2)."""
from copy import copy
from os.path import join
from time import time
from typing import List, Optional

import numpy as np
import torch
from torch import distributed as dist
from batchgeneratorsv2.transforms.spatial.mirroring import MirrorTransform
from batchgeneratorsv2.transforms.spatial.spatial import SpatialTransform
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.collate_outputs import collate_outputs
from nnunetv2.utilities.helpers import dummy_context
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager

from nnlandmark.inference.prediction_files import written_atomically
from nnlandmark.losses.heatmap import centre_crop, landmark_centres, squared_distances
from nnlandmark.losses.landmark_loss import TopKBCECoordinateLoss, TopKBCEHeatmapLoss, TopKBCESpatialSoftmaxLoss
from nnlandmark.presence import annotated_in_cases
from nnlandmark.trainers.mirroring import PairSwappingMirrorTransform, label_swap, left_right_axis, mirror_pairs
from nnlandmark.trainers.progress_log import LandmarkProgressLog


class nnLandmarkTrainer(nnUNetTrainer):
    """The paper's recipe on nnU-Net's schedule (SGD 1e-2, Nesterov 0.99, PolyLR, 1000 x 250, clip 12)."""

    heatmap_radius = 15.0   # voxels (of 3d_fullres; 3d_whole keeps the same radius in mm, see heatmap_radius_here)
    topk_percent = 20.0     # share of voxels kept per (sample, channel)
    epochs, iterations, val_iterations = 1000, 250, 50
    target_margin = 0       # voxels of label map loaded around each patch, so that cones from outside reach in
    coordinate_weight = 0.0  # weight of the soft-argmax distance term (TopKBCECoordinateLoss); 0: the paper's loss
    softmax_weight = 0.0    # weight of the spatial-softmax cross-entropy (TopKBCESpatialSoftmaxLoss); 0: none
    snapshot_every = 0      # epochs between kept copies checkpoint_epoch_NNNN.pth (learning curves); 0: none
    local_softmax_radius = 0.0  # >0: the spatial softmax within each cone, towards a cone this sharp (a fine stage)
    landmark_offset = 0     # voxels; >0: every training patch lies around a landmark, shifted up to this far per axis

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device('cuda')):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.enable_deep_supervision = False
        self.num_epochs, self.num_iterations_per_epoch = self.epochs, self.iterations
        self.num_val_iterations_per_epoch = self.val_iterations
        self.num_landmarks = len(self.label_manager.foreground_labels)
        self.logger.local_logger = LandmarkProgressLog()
        self._annotated_in_cases = None
        if self.landmark_offset:
            self.oversample_foreground_percent = 1.0

    @staticmethod
    def build_network_architecture(plans_manager, configuration_manager, num_input_channels,
                                   num_output_channels, enable_deep_supervision=True):
        """nnU-Net asks for background + N heads; a landmark model has exactly N (no background)."""
        return nnUNetTrainer.build_network_architecture(plans_manager, configuration_manager, num_input_channels,
                                                        num_output_channels - 1, enable_deep_supervision)

    def heatmap_radius_here(self) -> float:
        """The cone radius in this configuration's voxels: ``heatmap_radius``, except in the coarse whole-volume
        configuration (nnlandmark.planning.WHOLE_VOLUME), where a 15-voxel cone would span most of the volume (64 mm
        at 4.25 mm spacing); there the cone keeps its 3d_fullres size in mm. A cone that wide is minimised by a
        blob at the landmark's mean position, and the model learned little more than that mean shape."""
        from nnlandmark.planning import WHOLE_VOLUME
        if self.configuration_name != WHOLE_VOLUME:
            return self.heatmap_radius
        fullres = self.plans_manager.get_configuration('3d_fullres').spacing
        return self.heatmap_radius * min(fullres) / min(self.configuration_manager.spacing)

    def _build_loss(self):
        radius = self.heatmap_radius_here()
        self.print_to_log_file(f"heatmap cone radius: {radius:.2f} voxels of {self.configuration_name}")
        if self.softmax_weight:
            return TopKBCESpatialSoftmaxLoss(self.num_landmarks, radius, self.topk_percent, self.softmax_weight,
                                             self.local_softmax_radius)
        if self.coordinate_weight:
            return TopKBCECoordinateLoss(self.num_landmarks, radius, self.topk_percent, self.coordinate_weight)
        return TopKBCEHeatmapLoss(self.num_landmarks, radius, self.topk_percent)

    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):
        """Mirroring off in training and at test time, since it would swap left/right landmarks, unless
        dataset.json declares ``mirror_pairs``: then mirroring along the left-right axis only, with the pairs
        swapped (see nnlandmark.trainers.mirroring)."""
        rotation, dummy_2d, initial_patch_size, _ = super().configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        axes = (self.left_right_axis(),) if mirror_pairs(self.dataset_json) else None
        self.inference_allowed_mirroring_axes = axes
        return rotation, dummy_2d, initial_patch_size, axes

    def left_right_axis(self) -> int:
        from glob import glob
        from batchgenerators.utilities.file_and_folder_operations import load_pickle
        directions = [load_pickle(p)['sitk_stuff']['direction']
                      for p in glob(join(self.preprocessed_dataset_folder, '*.pkl'))]
        return left_right_axis(directions, self.plans_manager.transpose_forward)

    def get_training_transforms(self, patch_size, rotation_for_DA, deep_supervision_scales, mirror_axes,
                                do_dummy_2d_data_aug, **kwargs):
        """nnU-Net's pipeline; with mirror pairs its mirroring step is replaced by one that swaps the pairs. With a
        ``landmark_offset`` its spatial step crops off-centre (nnU-Net centres each patch on the landmark it
        samples, and a network that always finds its landmark at the centre learns that, not the landmark)."""
        compose = nnUNetTrainer.get_training_transforms(patch_size, rotation_for_DA, deep_supervision_scales,
                                                        mirror_axes, do_dummy_2d_data_aug, **kwargs)
        if self.landmark_offset:
            loaded = self.configure_rotation_dummyDA_mirroring_and_inital_patch_size()[2]
            compose.transforms = [off_centre_crop(t, loaded, self.landmark_offset) if type(t) is SpatialTransform
                                  else t for t in compose.transforms]
        if mirror_axes:
            swap = label_swap(self.dataset_json)
            compose.transforms = [PairSwappingMirrorTransform(t.allowed_axes, mirror_axes[0], swap)
                                  if type(t) is MirrorTransform else t for t in compose.transforms]
        return compose

    def get_dataloaders(self):
        """With a ``target_margin``, nnU-Net's loaders and augmentation work on patches that are larger by the margin
        on each side; ``train_step``/``validation_step`` give the network the central patch only."""
        if not self.target_margin:
            return super().get_dataloaders()
        patch = self.configuration_manager
        self.configuration_manager = ConfigurationManager(
            {**patch.configuration, 'patch_size': [p + 2 * self.target_margin for p in patch.patch_size]})
        try:
            return super().get_dataloaders()
        finally:
            self.configuration_manager = patch

    def network_input(self, data: torch.Tensor) -> torch.Tensor:
        """The patch the network sees: the loaded one without the target margin."""
        return centre_crop(data, self.configuration_manager.patch_size) if self.target_margin else data

    def annotated(self, keys) -> Optional[torch.Tensor]:
        """(B, N) bool: which landmarks of the batch's cases may be trained on (see nnlandmark.presence); None
        when all of them, the usual case."""
        if self._annotated_in_cases is None:
            self._annotated_in_cases = annotated_in_cases(self.preprocessed_dataset_folder, self.dataset_json)
        rows = np.stack([self._annotated_in_cases[k] for k in keys])
        return None if rows.all() else torch.from_numpy(rows)

    def train_step(self, batch: dict) -> dict:
        with self.loss.annotated_only(self.annotated(batch['keys'])):
            return super().train_step({**batch, 'data': self.network_input(batch['data'])})

    def validation_step(self, batch: dict) -> dict:
        data = self.network_input(batch['data']).to(self.device, non_blocking=True)
        seg = batch['target'].to(self.device, non_blocking=True)
        with torch.autocast(self.device.type) if self.device.type == 'cuda' else dummy_context(), \
                self.loss.annotated_only(self.annotated(batch['keys'])):
            output = self.network(data)
            loss = self.loss(output, seg)
        seg = centre_crop(seg, output.shape[2:])
        within = self.heatmap_radius_here() if self.local_softmax_radius else None
        error_sum, error_count = patch_landmark_errors(output.float(), seg, self.num_landmarks, within)
        return {'loss': loss.detach().cpu().numpy(), 'error_sum': error_sum.cpu().numpy(),
                'error_count': error_count.cpu().numpy()}

    def on_validation_epoch_end(self, val_outputs: List[dict]):
        out = collate_outputs(val_outputs)
        error_sum, error_count = np.sum(out['error_sum'], 0), np.sum(out['error_count'], 0)
        loss = np.mean(out['loss'])
        if self.is_ddp:
            gathered = [None] * dist.get_world_size()
            dist.all_gather_object(gathered, (error_sum, error_count, loss))
            error_sum = np.sum([g[0] for g in gathered], 0)
            error_count = np.sum([g[1] for g in gathered], 0)
            loss = float(np.mean([g[2] for g in gathered]))
        error = float(error_sum.sum() / max(error_count.sum(), 1)) if error_count.sum() else float('nan')
        previous = self.logger.get_value('ema_val_landmark_error_vox', step=None)
        ema = error if not previous or np.isnan(previous[-1]) else 0.9 * previous[-1] + 0.1 * error
        self.logger.log('val_losses', loss, self.current_epoch)
        self.logger.log('val_landmark_error_vox', error, self.current_epoch)
        self.logger.log('ema_val_landmark_error_vox', ema, self.current_epoch)

    def on_epoch_end(self):
        """As nnU-Net's, but 'best' is the lowest EMA landmark error on validation patches."""
        self.logger.log('epoch_end_timestamps', time(), self.current_epoch)
        value = lambda key: self.logger.get_value(key, step=-1)  # noqa: E731
        self.print_to_log_file('train_loss', np.round(value('train_losses'), 4))
        self.print_to_log_file('val_loss', np.round(value('val_losses'), 4))
        self.print_to_log_file('val patch landmark error [voxel]', np.round(value('val_landmark_error_vox'), 3))
        self.print_to_log_file(f"Epoch time: {np.round(value('epoch_end_timestamps') - value('epoch_start_timestamps'), 2)} s")
        if (self.current_epoch + 1) % self.save_every == 0 and self.current_epoch != (self.num_epochs - 1):
            self.save_checkpoint(join(self.output_folder, 'checkpoint_latest.pth'))
        if self.snapshot_every and (self.current_epoch + 1) % self.snapshot_every == 0:
            self.save_checkpoint(join(self.output_folder, f'checkpoint_epoch_{self.current_epoch + 1:04d}.pth'))
        ema = value('ema_val_landmark_error_vox')
        if not np.isnan(ema) and (self._best_ema is None or ema < self._best_ema):
            self._best_ema = ema
            self.print_to_log_file(f"New best EMA landmark error on validation patches: {np.round(ema, 3)} voxel")
            self.save_checkpoint(join(self.output_folder, 'checkpoint_best.pth'))
        if self.local_rank == 0:
            self.logger.plot_progress_png(self.output_folder)
        self.current_epoch += 1

    def save_checkpoint(self, filename: str) -> None:
        """nnU-Net's checkpoint, written to a temporary file and renamed: a run killed while saving keeps its previous
        checkpoint intact for ``--c``."""
        with written_atomically(filename) as temporary:  # only rank 0 writes, the others replace nothing
            super().save_checkpoint(temporary)

    def perform_actual_validation(self, save_probabilities: bool = False):
        """Predict this fold's validation cases, write CASE.json files and an MRE summary in mm."""
        from nnlandmark.trainers.validation import validate_fold
        self.network.eval()
        validate_fold(self)


def off_centre_crop(transform: SpatialTransform, loaded_shape, offset: int) -> SpatialTransform:
    """A copy of nnU-Net's spatial transform whose output patch is centred up to ``offset`` voxels (uniform, per
    axis) away from the centre of the loaded region."""
    shifted = copy(transform)
    shifted.random_crop = True
    shifted.patch_center_dist_from_border = [max(s / 2 - offset, 0) for s in loaded_shape]
    return shifted


def patch_landmark_errors(logits: torch.Tensor, seg: torch.Tensor, num_landmarks: int,
                          within: Optional[float] = None):
    """Per-landmark sum and count of voxel distances between each channel's maximum and the target centre,
    over the landmarks present in the patches. ``within``: the maximum within that many voxels of the centre (a fine
    stage's model is read within a ball around a coarse landmark)."""
    centres, present = landmark_centres(seg, num_landmarks)
    spatial = logits.shape[2:]
    if within is not None:
        logits = logits.masked_fill(squared_distances(centres, spatial) > within ** 2, float('-inf'))
    flat_argmax = logits.flatten(2).argmax(-1)  # (B, N)
    peaks = torch.stack(torch.unravel_index(flat_argmax, spatial), -1).float()
    distances = torch.linalg.norm(peaks - centres, dim=-1) * present
    return distances.sum(0), present.sum(0)
