"""nnU-Net trainer turned landmark detector: N sigmoid heatmap channels, EDT targets, BCE top-k (paper §2).

This class is the paper's recipe (plus what any dataset may need: landmarks that are not annotated in every case,
mirror pairs). Experiments override its hooks in trainers/variants.py: ``cone_radius``, ``_build_loss``,
``network_input``, ``patch_error_within`` and ``save_epoch_checkpoints``.
"""
from os.path import join
from time import time
from typing import Dict, List, Optional

import numpy as np
import torch
from torch import distributed as dist
from batchgeneratorsv2.transforms.spatial.mirroring import MirrorTransform
from nnunetv2.training.data_augmentation.compute_initial_patch_size import get_patch_size
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.collate_outputs import collate_outputs
from nnunetv2.utilities.helpers import dummy_context

from nnlandmark.heatmaps import centre_crop, patch_landmark_errors
from nnlandmark.io.atomic import written_atomically
from nnlandmark.io.images import preprocessed_case_properties
from nnlandmark.landmark_set import label_swap, landmark_labels, may_be_absent, mirror_pairs, multi_instance
from nnlandmark.losses import TopKBCEHeatmapLoss
from nnlandmark.network import build_network, load_checkpoint
from nnlandmark.stages import INSTANCE_GAP_KEY
from nnlandmark.trainers.instances import InstanceLabelTransform
from nnlandmark.trainers.mirroring import PairSwappingMirrorTransform, dataset_left_right_axis
from nnlandmark.trainers.progress_log import LandmarkProgressLog
from nnlandmark.trainers.validation import validate_fold


PLANAR_ROTATION = np.deg2rad(30.0)   # the rotation augmentation of a 2d configuration, either way


class nnLandmarkTrainer(nnUNetTrainer):
    """The paper's recipe on nnU-Net's schedule (SGD 1e-2, Nesterov 0.99, PolyLR, 1000 x 250, clip 12)."""

    heatmap_radius = 15.0   # voxels: the EDT cone, 1 at the landmark falling linearly to 0 at this distance
    min_instance_radius = 2.0   # voxels: the narrowest cone a multi-instance class gets (instance_cone_radius)
    topk_percent = 20.0     # share of voxels kept per (sample, channel)
    epochs, iterations, val_iterations = 1000, 250, 50
    trust_checkpoint = False  # --trust_checkpoint: unpickle --c / --val checkpoints in full
    export_heatmaps = False   # --npz: the final validation also writes each case's heatmaps

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device('cuda')):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.enable_deep_supervision = False
        self.num_epochs, self.num_iterations_per_epoch = self.epochs, self.iterations
        self.num_val_iterations_per_epoch = self.val_iterations
        self.num_landmarks = len(landmark_labels(dataset_json))
        classes = multi_instance(dataset_json)
        self.instance_channels = [c for c, name in enumerate(landmark_labels(dataset_json)) if name in classes]
        self.logger.local_logger = LandmarkProgressLog()
        self._annotated_in_cases = None

    @staticmethod
    def build_network_architecture(plans_manager, configuration_manager, num_input_channels,
                                   num_output_channels, enable_deep_supervision=True):
        """nnU-Net asks for background + N heads; a landmark model has exactly N (no background)."""
        return build_network(configuration_manager, num_input_channels, num_output_channels - 1,
                             enable_deep_supervision)

    def cone_radius(self) -> float:
        """The heatmap cone radius in voxels of this configuration."""
        return self.heatmap_radius

    def instance_cone_radius(self) -> List[float]:
        """Each multi-instance class's cone radius in voxels: the landmarks' cone, narrowed to half the distance at
        which the planner found the class's instances to lie (``stages.INSTANCE_GAP_KEY``), but at least
        ``min_instance_radius``. Why: the maximum of wide cones of neighbouring instances is one broad hump, which a
        short schedule learns as a plateau (benchmarks/multi_instance.py)."""
        gaps = self.plans_manager.plans.get(INSTANCE_GAP_KEY, {})
        names = list(landmark_labels(self.dataset_json))
        voxel = max(self.configuration_manager.spacing)
        return [min(self.cone_radius(), max(self.min_instance_radius, gaps[names[c]] / 2 / voxel))
                if names[c] in gaps else self.cone_radius() for c in self.instance_channels]

    def _build_loss(self):
        radius, class_radii = self.cone_radius(), self.instance_cone_radius()
        self.print_to_log_file(f"heatmap cone radius: {radius:.2f} voxels of {self.configuration_name}" +
                               "".join(f"; class channel {c}: {r:.2f}"
                                       for c, r in zip(self.instance_channels, class_radii)))
        return TopKBCEHeatmapLoss(self.num_landmarks, radius, self.topk_percent, self.instance_channels, class_radii)

    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):
        """Mirroring off in training and at test time, since it would swap left/right landmarks, unless
        dataset.json declares ``mirror_pairs``: then mirroring along the left-right axis only, with the pairs
        swapped (see nnlandmark.trainers.mirroring). A 2d configuration rotates by at most 30 degrees, as nnU-Net's
        3D ones do, not its 2D default of up to 180: a radiograph is upright, and which corner of an outline a
        landmark is follows from that."""
        rotation, dummy_2d, initial_patch_size, _ = super().configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        if len(self.configuration_manager.patch_size) == 2:
            rotation = (-PLANAR_ROTATION, PLANAR_ROTATION)
            initial_patch_size = get_patch_size(self.configuration_manager.patch_size, rotation, rotation, rotation,
                                                (0.85, 1.25))
        axes = (self.left_right_axis(),) if mirror_pairs(self.dataset_json) else None
        self.inference_allowed_mirroring_axes = axes
        return rotation, dummy_2d, initial_patch_size, axes

    def left_right_axis(self) -> int:
        """The patch axis along the patient's left-right (a 2d configuration's patches lack the first axis)."""
        axis = dataset_left_right_axis(preprocessed_case_properties(self.preprocessed_dataset_folder).values(),
                                       self.plans_manager.transpose_forward)
        return axis - (3 - len(self.configuration_manager.patch_size))

    def get_training_transforms(self, patch_size, rotation_for_DA, deep_supervision_scales, mirror_axes,
                                do_dummy_2d_data_aug, **kwargs):
        """nnU-Net's pipeline; with mirror pairs its mirroring step is replaced by one that swaps the pairs."""
        compose = nnUNetTrainer.get_training_transforms(patch_size, rotation_for_DA, deep_supervision_scales,
                                                        mirror_axes, do_dummy_2d_data_aug, **kwargs)
        if mirror_axes:
            swap = label_swap(self.dataset_json)
            compose.transforms = [PairSwappingMirrorTransform(t.allowed_axes, mirror_axes[0], swap)
                                  if type(t) is MirrorTransform else t for t in compose.transforms]
        return self.with_instance_labels(compose)

    def get_validation_transforms(self, deep_supervision_scales, is_cascaded=False, foreground_labels=None,
                                  regions=None, ignore_label=None):
        return self.with_instance_labels(nnUNetTrainer.get_validation_transforms(
            deep_supervision_scales, is_cascaded, foreground_labels, regions, ignore_label))

    def with_instance_labels(self, compose):
        """The pipeline, ending in the step that tells a multi-instance class's instances apart (where there are
        such classes)."""
        if self.instance_channels:
            compose.transforms.append(InstanceLabelTransform(self.num_landmarks,
                                                             [c + 1 for c in self.instance_channels]))
        return compose

    def network_input(self, data: torch.Tensor) -> torch.Tensor:
        """The part of the loaded patch the network sees (all of it)."""
        return data

    def annotated(self, keys) -> Optional[torch.Tensor]:
        """(B, N) bool: which landmarks of the batch's cases may be trained on; None when all of them, the usual
        case (see annotated_in_cases)."""
        if self._annotated_in_cases is None:
            self._annotated_in_cases = annotated_in_cases(
                preprocessed_case_properties(self.preprocessed_dataset_folder), self.dataset_json)
        rows = np.stack([self._annotated_in_cases[k] for k in keys])
        return None if rows.all() else torch.from_numpy(rows)

    def loss_target(self, batch: dict):
        """The label patch, with the annotation mask beside it when some landmark of the batch is not annotated
        (nnU-Net moves a list target to the device element by element)."""
        annotated = self.annotated(batch['keys'])
        return batch['target'] if annotated is None else [batch['target'], annotated]

    def train_step(self, batch: dict) -> dict:
        return super().train_step({**batch, 'data': self.network_input(batch['data']),
                                   'target': self.loss_target(batch)})

    def validation_step(self, batch: dict) -> dict:
        data = self.network_input(batch['data']).to(self.device, non_blocking=True)
        target = self.loss_target(batch)
        target = [t.to(self.device, non_blocking=True) for t in target] if isinstance(target, list) else \
            target.to(self.device, non_blocking=True)
        with torch.autocast(self.device.type) if self.device.type == 'cuda' else dummy_context():
            output = self.network(data)
            loss = self.loss(output, target)
        seg = centre_crop(batch['target'].to(self.device, non_blocking=True), output.shape[2:])
        error_sum, error_count = patch_landmark_errors(output.float(), seg, self.num_landmarks,
                                                       self.patch_error_within())
        return {'loss': loss.detach().cpu().numpy(), 'error_sum': error_sum.cpu().numpy(),
                'error_count': error_count.cpu().numpy()}

    def patch_error_within(self) -> Optional[float]:
        """Voxels around each landmark within which the validation patch error reads its channel's maximum; None:
        the whole patch."""
        return None

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
        self.save_epoch_checkpoints()
        if self.local_rank == 0:
            self.logger.plot_progress_png(self.output_folder)
        self.current_epoch += 1

    def save_epoch_checkpoints(self) -> None:
        """checkpoint_best.pth at a new lowest EMA landmark error, then checkpoint_latest.pth every ``save_every``
        epochs, which so carries this epoch's best for ``--c`` (saved before it, as nnU-Net does, a resumed run forgot
        the last epoch's best and could overwrite checkpoint_best.pth with a worse model)."""
        ema = self.logger.get_value('ema_val_landmark_error_vox', step=-1)
        if not np.isnan(ema) and (self._best_ema is None or ema < self._best_ema):
            self._best_ema = ema
            self.print_to_log_file(f"New best EMA landmark error on validation patches: {np.round(ema, 3)} voxel")
            self.save_checkpoint(join(self.output_folder, 'checkpoint_best.pth'))
        if (self.current_epoch + 1) % self.save_every == 0 and self.current_epoch != (self.num_epochs - 1):
            self.save_checkpoint(join(self.output_folder, 'checkpoint_latest.pth'))

    def save_checkpoint(self, filename: str) -> None:
        """nnU-Net's checkpoint, written to a temporary file and renamed: a run killed while saving keeps its previous
        checkpoint intact for ``--c``."""
        with written_atomically(filename) as temporary:  # only rank 0 writes, the others replace nothing
            super().save_checkpoint(temporary)

    def load_checkpoint(self, filename_or_checkpoint) -> None:
        """nnU-Net's resume, once the file has passed the weights-only reader (network.load_checkpoint): a fold copied
        from elsewhere cannot run code through --c or --val. (nnU-Net itself unpickles the file in full, and does not
        accept the checkpoint as a dict in this version.)"""
        if isinstance(filename_or_checkpoint, str) and not self.trust_checkpoint:
            load_checkpoint(filename_or_checkpoint)
        super().load_checkpoint(filename_or_checkpoint)

    def perform_actual_validation(self, save_probabilities: bool = False):
        """Predict this fold's validation cases, write CASE.json files and an MRE summary in mm."""
        self.network.eval()
        validate_fold(self)


def annotated_in_cases(case_properties: Dict[str, dict], dataset_json: dict) -> Dict[str, np.ndarray]:
    """{case: (N,) bool} whether each landmark may be trained on in that case: it has voxels in the preprocessed
    label map (nnU-Net's ``class_locations``), or its absence is declared real (``landmarks_may_be_absent``, and
    every multi-instance class: a case without instances says "none here")."""
    labels = landmark_labels(dataset_json)
    absent_ok = np.array([n in may_be_absent(dataset_json) | set(multi_instance(dataset_json)) for n in labels])
    return {case: np.array([len(properties.get('class_locations', {}).get(v, [])) > 0 for v in labels.values()])
            | absent_ok for case, properties in case_properties.items()}
