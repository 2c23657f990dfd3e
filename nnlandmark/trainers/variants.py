"""Trainer variants: each changes one attribute of nnLandmarkTrainer (paper ablations, schedules, CPU runs)."""
import torch
from nnunetv2.training.lr_scheduler.polylr import PolyLRScheduler

from nnlandmark.losses.landmark_loss import MSEHeatmapLoss
from nnlandmark.trainers.nnLandmarkTrainer import nnLandmarkTrainer


class nnLandmarkTrainer_MSE(nnLandmarkTrainer):
    """Ablation: MSE on the sigmoid output instead of BCE top-k."""

    def _build_loss(self):
        return MSEHeatmapLoss(self.num_landmarks, self.heatmap_radius_here())


class nnLandmarkTrainer_CPU(nnLandmarkTrainer):
    """Short CPU schedule (DESIGN.md §6): AdamW 3e-3, 40 epochs x 50 iterations; use with small plans."""
    initial_lr_cpu = 3e-3
    epochs, iterations, val_iterations = 40, 50, 5
    checkpoint_every = 10  # epochs between checkpoint_latest.pth saves

    def __init__(self, plans, configuration, fold, dataset_json, device=torch.device('cuda')):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.initial_lr = self.initial_lr_cpu
        self.save_every = self.checkpoint_every

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.network.parameters(), self.initial_lr, weight_decay=self.weight_decay)
        return optimizer, PolyLRScheduler(optimizer, self.initial_lr, self.num_epochs)


def _variant(base, suffix: str, doc: str, **attributes):
    cls = type(f"{base.__name__}_{suffix}", (base,), {"__doc__": doc, "__module__": __name__, **attributes})
    globals()[cls.__name__] = cls
    return cls


for _r in (7, 11, 19, 23):  # paper Table 3: heatmap radius
    _variant(nnLandmarkTrainer, f"EDT{_r}", f"Ablation: EDT radius {_r} voxels.", heatmap_radius=float(_r))
for _k in (10, 30, 40, 50, 60, 70, 80, 90, 100):  # paper Table 3: share of voxels kept by the loss
    _variant(nnLandmarkTrainer, f"TopK{_k}", f"Ablation: BCE top {_k} %.", topk_percent=float(_k))
_variant(nnLandmarkTrainer_CPU, "4epochs", "A pipeline check in about a minute on CPU: 4 epochs x 10 iterations, "
         "a checkpoint every epoch.", epochs=4, iterations=10, val_iterations=2, checkpoint_every=1)
_variant(nnLandmarkTrainer_CPU, "Curve", "CPU schedule keeping a checkpoint every 5 epochs (MRE vs minutes charts).",
         snapshot_every=5)
_soft_argmax = _variant(nnLandmarkTrainer_CPU, "SoftArgmax", "CPU schedule plus a soft-argmax distance term in the loss (many "
         "landmarks on a CPU budget, with the whole-volume configuration).", coordinate_weight=1.0)
_variant(_soft_argmax, "Curve", "As nnLandmarkTrainer_CPU_SoftArgmax, a checkpoint every 5 epochs.",
         snapshot_every=5)
_spatial_softmax = _variant(nnLandmarkTrainer_CPU, "SpatialSoftmax", "CPU schedule plus a spatial-softmax "
                            "cross-entropy in the loss (many landmarks on a CPU budget, with 3d_whole).",
                            softmax_weight=1.0)
_variant(_spatial_softmax, "Curve", "As nnLandmarkTrainer_CPU_SpatialSoftmax, a checkpoint every 5 epochs.",
         snapshot_every=5)
_fine = _variant(_spatial_softmax, "Fine", "The fine stage of a CPU cascade (3d_fullres, read with nnLandmark_predict "
                 "--search_around a 3d_whole model's landmarks): patches around landmarks, shifted up to 8 voxels, and "
                 "the spatial softmax within each cone towards a 3-voxel cone.", landmark_offset=8,
                 local_softmax_radius=3.0)
_variant(_fine, "Curve", "As nnLandmarkTrainer_CPU_SpatialSoftmax_Fine, a checkpoint every 5 epochs.", snapshot_every=5)
for _m in (4, 8, 15):  # beyond the paper: label map margin around each patch (cones from landmarks just outside)
    _variant(nnLandmarkTrainer, f"Margin{_m}", f"Targets built with a {_m}-voxel label margin around each patch.",
             target_margin=_m)
    _variant(nnLandmarkTrainer_CPU, f"Margin{_m}", f"CPU schedule, targets built with a {_m}-voxel label margin.",
             target_margin=_m)
for _e in (1, 5, 10, 50, 100, 250, 500):
    _variant(nnLandmarkTrainer, f"{_e}epochs", f"The paper's recipe for {_e} epochs.", epochs=_e)
