"""Trainer variants: each experiment lives here, in the class (or mixin) that uses it, by overriding a hook of
nnLandmarkTrainer (paper ablations, schedules, the CPU cascade's stages, measured dead ends kept as ablations)."""
from copy import copy
from os.path import join

import torch
from batchgeneratorsv2.transforms.spatial.spatial import SpatialTransform
from nnunetv2.training.lr_scheduler.polylr import PolyLRScheduler
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager

from nnlandmark.heatmaps import centre_crop
from nnlandmark.losses import MSEHeatmapLoss, TopKBCECoordinateLoss, TopKBCESpatialSoftmaxLoss
from nnlandmark.paths import COARSE_STAGES
from nnlandmark.stages import EPOCHS_KEY
from nnlandmark.trainers.nnLandmarkTrainer import nnLandmarkTrainer


class nnLandmarkTrainer_MSE(nnLandmarkTrainer):
    """Ablation: MSE on the sigmoid output instead of BCE top-k."""

    def _build_loss(self):
        return MSEHeatmapLoss(self.num_landmarks, self.cone_radius(), self.instance_channels,
                              self.instance_cone_radius())


class nnLandmarkTrainer_CPU(nnLandmarkTrainer):
    """Short CPU schedule: AdamW 3e-3, 50 iterations per epoch, as many epochs as the CPU plans set for the
    configuration (``nnlandmark_epochs``, planning.CPU_EPOCHS; 40 where they set none) unless a variant fixes them;
    use with the CPU plans (nnLandmarkCPUPlans)."""
    initial_lr_cpu = 3e-3
    epochs, iterations, val_iterations = None, 50, 5
    planless_epochs = 40
    checkpoint_every = 10  # epochs between checkpoint_latest.pth saves

    def __init__(self, plans, configuration, fold, dataset_json, device=torch.device('cuda')):
        super().__init__(plans, configuration, fold, dataset_json, device)
        if self.epochs is None:
            self.num_epochs = int(self.configuration_manager.configuration.get(EPOCHS_KEY, self.planless_epochs))
        self.initial_lr = self.initial_lr_cpu
        self.save_every = self.checkpoint_every

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.network.parameters(), self.initial_lr, weight_decay=self.weight_decay)
        return optimizer, PolyLRScheduler(optimizer, self.initial_lr, self.num_epochs)

    def cone_radius(self) -> float:
        """In a coarse configuration (3d_whole, 2d_whole) the cone keeps its size in mm of the fine one: 15 of its
        voxels would span most of the volume (64 mm at 4.25 mm spacing), and a cone that wide is minimised by a blob
        at the landmark's mean position, so the model learned little more than that mean shape."""
        fine = [f for f, coarse in COARSE_STAGES.items() if coarse == self.configuration_name]
        if not fine:
            return self.heatmap_radius
        fine_spacing = self.plans_manager.get_configuration(fine[0]).spacing
        return self.heatmap_radius * min(fine_spacing) / min(self.configuration_manager.spacing)


class nnLandmarkTrainer_CPU_SoftArgmax(nnLandmarkTrainer_CPU):
    """Ablation (no gain measured): the CPU schedule plus a soft-argmax distance term in the loss."""
    coordinate_weight = 1.0

    def _build_loss(self):
        return TopKBCECoordinateLoss(self.num_landmarks, self.cone_radius(), self.topk_percent, self.coordinate_weight,
                                     self.instance_channels, self.instance_cone_radius())


class nnLandmarkTrainer_CPU_SpatialSoftmax(nnLandmarkTrainer_CPU):
    """The coarse stage of the CPU cascade (3d_whole): the CPU schedule plus a spatial-softmax cross-entropy in the
    loss, so that many landmarks are learned on a CPU budget."""
    softmax_weight = 1.0

    def _build_loss(self):
        return TopKBCESpatialSoftmaxLoss(self.num_landmarks, self.cone_radius(), self.topk_percent,
                                         self.softmax_weight, instance_channels=self.instance_channels,
                                         instance_radius=self.instance_cone_radius())


class nnLandmarkTrainer_CPU_SpatialSoftmax_Fine(nnLandmarkTrainer_CPU_SpatialSoftmax):
    """The fine stage of a CPU cascade (3d_fullres, read with nnLandmark_predict --search_around a 3d_whole model's
    landmarks): patches around landmarks, shifted up to ``landmark_offset`` voxels, and the spatial softmax within
    each cone towards a ``local_softmax_radius``-voxel cone."""
    landmark_offset = 8
    local_softmax_radius = 3.0

    def __init__(self, plans, configuration, fold, dataset_json, device=torch.device('cuda')):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.oversample_foreground_percent = 1.0  # every patch is sampled around a landmark

    def _build_loss(self):
        return TopKBCESpatialSoftmaxLoss(self.num_landmarks, self.cone_radius(), self.topk_percent,
                                         self.softmax_weight, self.local_softmax_radius, self.instance_channels,
                                         self.instance_cone_radius())

    def get_training_transforms(self, patch_size, rotation_for_DA, deep_supervision_scales, mirror_axes,
                                do_dummy_2d_data_aug, **kwargs):
        """nnU-Net centres each patch on the landmark it samples, and a network that always finds its landmark at the
        centre learns that, not the landmark: its spatial step crops off-centre here."""
        compose = super().get_training_transforms(patch_size, rotation_for_DA, deep_supervision_scales, mirror_axes,
                                                  do_dummy_2d_data_aug, **kwargs)
        loaded = self.configure_rotation_dummyDA_mirroring_and_inital_patch_size()[2]
        compose.transforms = [off_centre_crop(t, loaded, self.landmark_offset) if type(t) is SpatialTransform
                              else t for t in compose.transforms]
        return compose

    def patch_error_within(self) -> float:
        """The model is read within a ball around a coarse landmark, so its patch error is read within the cone."""
        return self.cone_radius()


def off_centre_crop(transform: SpatialTransform, loaded_shape, offset: int) -> SpatialTransform:
    """A copy of nnU-Net's spatial transform whose output patch is centred up to ``offset`` voxels (uniform, per
    axis) away from the centre of the loaded region."""
    shifted = copy(transform)
    shifted.random_crop = True
    shifted.patch_center_dist_from_border = [max(s / 2 - offset, 0) for s in loaded_shape]
    return shifted


class EpochSnapshots:
    """Mixin: keeps checkpoint_epoch_NNNN.pth every ``snapshot_every`` epochs (MRE-vs-minutes curves)."""
    snapshot_every = 5

    def save_epoch_checkpoints(self) -> None:
        super().save_epoch_checkpoints()
        if (self.current_epoch + 1) % self.snapshot_every == 0:
            self.save_checkpoint(join(self.output_folder, f'checkpoint_epoch_{self.current_epoch + 1:04d}.pth'))


class TargetMargin:
    """Mixin, an ablation (no gain measured): nnU-Net's loaders and augmentation work on patches larger by
    ``target_margin`` voxels on each side, so that landmarks just outside the network's patch still cast their cones
    into its targets; the network sees the central patch only."""
    target_margin = 8

    def get_dataloaders(self):
        patch = self.configuration_manager
        self.configuration_manager = ConfigurationManager(
            {**patch.configuration, 'patch_size': [p + 2 * self.target_margin for p in patch.patch_size]})
        try:
            return super().get_dataloaders()
        finally:
            self.configuration_manager = patch

    def network_input(self, data: torch.Tensor) -> torch.Tensor:
        return centre_crop(data, self.configuration_manager.patch_size)


def _variant(bases, name: str, doc: str, **attributes):
    bases = bases if isinstance(bases, tuple) else (bases,)
    cls = type(name, bases, {"__doc__": doc, "__module__": __name__, **attributes})
    globals()[name] = cls
    return cls


for _r in (7, 11, 19, 23):  # paper Table 3: heatmap radius
    _variant(nnLandmarkTrainer, f"nnLandmarkTrainer_EDT{_r}", f"Ablation: EDT radius {_r} voxels.",
             heatmap_radius=float(_r))
for _k in (10, 30, 40, 50, 60, 70, 80, 90, 100):  # paper Table 3: share of voxels kept by the loss
    _variant(nnLandmarkTrainer, f"nnLandmarkTrainer_TopK{_k}", f"Ablation: BCE top {_k} %.", topk_percent=float(_k))
for _e in (1, 5, 10, 50, 100, 250, 500):
    _variant(nnLandmarkTrainer, f"nnLandmarkTrainer_{_e}epochs", f"The paper's recipe for {_e} epochs.", epochs=_e)
_variant(nnLandmarkTrainer_CPU, "nnLandmarkTrainer_CPU_4epochs", "A pipeline check in about a minute on CPU: 4 epochs "
         "x 10 iterations, a checkpoint every epoch.", epochs=4, iterations=10, val_iterations=2, checkpoint_every=1)
for _base in (nnLandmarkTrainer_CPU, nnLandmarkTrainer_CPU_SoftArgmax, nnLandmarkTrainer_CPU_SpatialSoftmax,
              nnLandmarkTrainer_CPU_SpatialSoftmax_Fine):
    _variant((EpochSnapshots, _base), f"{_base.__name__}_Curve", f"As {_base.__name__} for 40 epochs, a checkpoint "
             f"every 5 epochs (MRE vs minutes charts).", epochs=40)
for _m in (4, 8, 15):  # beyond the paper: label map margin around each patch (cones from landmarks just outside)
    _variant((TargetMargin, nnLandmarkTrainer), f"nnLandmarkTrainer_Margin{_m}",
             f"Ablation: targets built with a {_m}-voxel label margin around each patch.", target_margin=_m)
    _variant((TargetMargin, nnLandmarkTrainer_CPU), f"nnLandmarkTrainer_CPU_Margin{_m}",
             f"Ablation: CPU schedule, targets built with a {_m}-voxel label margin.", target_margin=_m)
