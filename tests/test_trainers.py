"""Trainer registry, variants and the in-training landmark metric."""
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from nnlandmark.errors import LandmarkError
from nnlandmark.heatmaps import heatmap_targets, patch_landmark_errors
from nnlandmark.losses import TopKBCECoordinateLoss, TopKBCEHeatmapLoss, TopKBCESpatialSoftmaxLoss
from nnlandmark.trainers import trainer_class_by_name
from nnlandmark.trainers.variants import nnLandmarkTrainer_CPU


def _loss_of(name, cone_radius=None, instance_gap_mm=None, spacing=(1.0, 1.0, 1.0)):
    """The loss trainer ``name`` builds, on a stand-in trainer with 7 landmarks (``cone_radius`` replaces the hook);
    with ``instance_gap_mm`` the last one is a multi-instance class whose instances the planner found that far apart
    ({} : never two in a case)."""
    cls = trainer_class_by_name(name)
    settings = {a: getattr(cls, a) for a in dir(cls) if not a.startswith("_") and not callable(getattr(cls, a))}
    names = [f"l{i}" for i in range(1, 7)] + ["contact"]
    classes = [] if instance_gap_mm is None else ["contact"]
    trainer = SimpleNamespace(**settings,
                              num_landmarks=7, instance_channels=[6] if classes else [],
                              configuration_name="3d_fullres", print_to_log_file=lambda *a: None,
                              dataset_json={"labels": {"background": 0, **{n: i + 1 for i, n in enumerate(names)}},
                                            "multi_instance": classes},
                              plans_manager=SimpleNamespace(plans={"nnlandmark_instance_gap_mm": instance_gap_mm or {}}),
                              configuration_manager=SimpleNamespace(spacing=list(spacing)))
    trainer.cone_radius = (lambda: cone_radius) if cone_radius else (lambda: cls.cone_radius(trainer))
    trainer.instance_cone_radius = lambda: cls.instance_cone_radius(trainer)
    return cls._build_loss(trainer)


@pytest.mark.parametrize("name,radius,k_percent", [("nnLandmarkTrainer", 15, 20), ("nnLandmarkTrainer_EDT7", 7, 20),
                                                    ("nnLandmarkTrainer_EDT23", 23, 20),
                                                    ("nnLandmarkTrainer_TopK50", 15, 50)])
def test_paper_ablation_variants_train_towards_the_cone_and_share_they_name(name, radius, k_percent):
    """At logits -5 a voxel's BCE is 5.0067 t + 0.0067 (1 - t): the loss is the mean over the top k % voxels of the
    cone t = max(0, 1 - d / radius) around the landmark, computed here by hand."""
    seg = torch.zeros(1, 1, 32, 32, 32)
    seg[0, 0, 14:17, 14:17, 14:17] = 1                             # landmark 1 at (15, 15, 15); the others absent
    loss = _loss_of(name)
    per_channel = loss.per_channel(torch.full((1, 7, 32, 32, 32), -5.0), heatmap_targets(seg, 7, loss.radius))
    z, y, x = np.meshgrid(*[np.arange(32)] * 3, indexing="ij")
    cone = np.clip(1 - np.sqrt((z - 15) ** 2 + (y - 15) ** 2 + (x - 15) ** 2) / radius, 0, None).ravel()
    bce = cone * -math.log(1 / (1 + math.exp(5))) + (1 - cone) * -math.log(1 - 1 / (1 + math.exp(5)))
    kept = np.sort(bce)[::-1][:int(round(bce.size * k_percent / 100))]
    assert per_channel[0, 0].item() == pytest.approx(kept.mean(), rel=1e-4)
    assert per_channel[0, 1].item() == pytest.approx(-math.log(1 - 1 / (1 + math.exp(5))), rel=1e-4)  # no cone


def test_each_loss_option_builds_its_loss_with_the_trainer_settings():
    expected = {"nnLandmarkTrainer_CPU": TopKBCEHeatmapLoss,
                "nnLandmarkTrainer_CPU_SoftArgmax": TopKBCECoordinateLoss,
                "nnLandmarkTrainer_CPU_SpatialSoftmax": TopKBCESpatialSoftmaxLoss,
                "nnLandmarkTrainer_CPU_SpatialSoftmax_Fine": TopKBCESpatialSoftmaxLoss,
                "nnLandmarkTrainer_CPU_SpatialSoftmax_Fine_Curve": TopKBCESpatialSoftmaxLoss}
    for name, loss_class in expected.items():
        loss = _loss_of(name, cone_radius=6.5)
        assert type(loss) is loss_class and (loss.num_landmarks, loss.radius, loss.k_percent) == (7, 6.5, 20.0)
        assert getattr(loss, "local_radius", 0.0) == (3.0 if "_Fine" in name else 0.0)


@pytest.mark.parametrize("gap_mm,radius", [(10.0, 2.5), (100.0, 15.0), (1.0, 2.0), (None, 15.0)])
def test_a_multi_instance_class_gets_cones_of_half_the_gap_between_its_instances(gap_mm, radius):
    """Voxels of 1 x 1 x 2 mm: a 10 mm gap gives cones of 5 mm = 2.5 of the largest voxels (neighbouring cones just
    touch); never wider than the landmarks' 15 voxels nor narrower than 2; no gap planned: the landmarks' cone."""
    for name in ("nnLandmarkTrainer_CPU", "nnLandmarkTrainer_CPU_SpatialSoftmax_Fine"):
        loss = _loss_of(name, instance_gap_mm={} if gap_mm is None else {"contact": gap_mm}, spacing=(1.0, 1.0, 2.0))
        assert loss.radius == 15.0 and loss.instance_radius == [radius]


def test_unknown_trainer_names_the_alternatives():
    with pytest.raises(LandmarkError, match="unknown trainer 'nnUNetTrainer'.*nnLandmarkTrainer_EDT7"):
        trainer_class_by_name("nnUNetTrainer")


def test_patch_landmark_error_measures_peak_to_centre_distance():
    seg = torch.zeros(1, 1, 10, 10, 10)
    seg[0, 0, 1:4, 1:4, 1:4] = 1      # centre (2, 2, 2)
    logits = torch.zeros(1, 2, 10, 10, 10)
    logits[0, 0, 5, 6, 2] = 9.0       # peak 3-4-0 away from the centre: distance 5
    logits[0, 1, 0, 0, 0] = 9.0       # landmark 2 is absent from the patch: not counted
    total, count = patch_landmark_errors(logits, seg, num_landmarks=2)
    assert total.tolist() == [5.0, 0.0] and count.tolist() == [1, 0]
    logits[0, 0, 2, 2, 4] = 8.0       # a lower peak 2 voxels from the centre: the maximum within 3 voxels
    total, count = patch_landmark_errors(logits, seg, num_landmarks=2, within=3.0)
    assert total.tolist() == [2.0, 0.0] and count.tolist() == [1, 0]


@pytest.mark.slow
def test_a_target_margin_loads_larger_patches_and_trains_the_network_on_their_centre(nnunet_dirs, monkeypatch,
                                                                                      tiny_trainer):
    """... also with the soft-argmax term, whose landmark positions must be shifted into the network's patch."""
    from nnlandmark.dataset_conversion.synthetic import make_synthetic_dataset
    from nnlandmark.planning import plan_and_preprocess
    from nnlandmark.trainers.run import build_trainer
    from nnlandmark.trainers.variants import TargetMargin

    class nnLandmarkTrainer_tinyMargin4(TargetMargin, tiny_trainer):  # noqa: F841  (found by name as a subclass)
        target_margin = 4

        def _build_loss(self):
            return TopKBCECoordinateLoss(self.num_landmarks, self.cone_radius())

    make_synthetic_dataset(str(nnunet_dirs / "nnUNet_raw"), 994, "Margin", n_train=5, n_test=0, size=32)
    plan_and_preprocess(994, ("3d_fullres",))
    monkeypatch.setenv("nnUNet_n_proc_DA", "0")
    trainer = build_trainer(994, "3d_fullres", 0, "nnLandmarkTrainer_tinyMargin4", "nnUNetPlans", False,
                            torch.device("cpu"))
    trainer.initialize()
    assert isinstance(trainer.loss, TopKBCECoordinateLoss)
    patch = list(trainer.configuration_manager.patch_size)
    loader, _ = trainer.get_dataloaders()
    batch = next(loader)
    assert list(batch["data"].shape[2:]) == [p + 8 for p in patch] == list(batch["target"].shape[2:])
    assert list(trainer.configuration_manager.patch_size) == patch  # the plans' patch is back in place
    assert list(trainer.network_input(batch["data"]).shape[2:]) == patch
    assert np.isfinite(trainer.train_step(batch)["loss"])
    assert trainer.validation_step(batch)["error_count"].sum() >= 1


def test_the_whole_volume_configuration_keeps_the_cone_radius_in_mm():
    plans = SimpleNamespace(get_configuration=lambda name: SimpleNamespace(spacing=[2.0, 2.0, 2.5]))
    whole = SimpleNamespace(configuration_name="3d_whole", heatmap_radius=15.0, plans_manager=plans,
                            configuration_manager=SimpleNamespace(spacing=[4.0, 4.0, 5.0]))
    assert nnLandmarkTrainer_CPU.cone_radius(whole) == 7.5             # 15 voxels x 2 mm = 30 mm = 7.5 x 4 mm
    fullres = SimpleNamespace(**{**vars(whole), "configuration_name": "3d_fullres"})
    assert nnLandmarkTrainer_CPU.cone_radius(fullres) == 15.0          # the paper's radius elsewhere


def test_a_landmark_offset_centres_patches_up_to_that_far_from_the_sampled_landmark():
    """nnU-Net's loader centres a foreground patch on its landmark; the fine stage's crop moves it off-centre, uniformly
    within the offset along each axis, and keeps the landmark's label in the patch."""
    from batchgeneratorsv2.transforms.spatial.spatial import SpatialTransform
    from nnlandmark.heatmaps import landmark_centres
    from nnlandmark.trainers.variants import off_centre_crop
    plain = SpatialTransform((16, 16, 16), patch_center_dist_from_border=0, random_crop=False, p_rotation=0,
                             p_scaling=0, p_elastic_deform=0)
    loaded = (27, 27, 27)
    seg = torch.zeros(1, *loaded)
    seg[0, 12:15, 12:15, 12:15] = 1                                   # the sampled landmark at the loaded centre (13)
    sample = {"image": torch.rand(1, *loaded), "segmentation": seg}
    centred = landmark_centres(plain(**sample)["segmentation"][None].round(), 1)[0][0, 0]
    assert torch.allclose(centred, torch.full((3,), 7.5), atol=0.51)   # nnU-Net alone: at the patch centre
    shifted = off_centre_crop(plain, loaded, offset=4)
    assert not plain.random_crop                                      # a copy: nnU-Net's transform is unchanged
    np.random.seed(0)
    offsets = []
    for _ in range(200):
        out = shifted(**{k: v.clone() for k, v in sample.items()})["segmentation"][None].round()
        centres, present = landmark_centres(out, 1)
        assert present.all()
        offsets.append((centres[0, 0] - 7.5).numpy())
    offsets = np.array(offsets)
    assert np.abs(offsets).max() <= 4.5 and np.abs(offsets).max(0).min() >= 3.0   # within 4 voxels, and using them
    assert np.abs(offsets.mean(0)).max() < 0.6 and offsets.std(0).min() > 1.5     # spread both ways on every axis


@pytest.mark.slow
def test_a_fine_stage_trainer_wires_landmark_patches_and_the_off_centre_crop_into_nnunets_pipeline(nnunet_dirs,
                                                                                                  monkeypatch):
    from batchgeneratorsv2.transforms.spatial.spatial import SpatialTransform
    from nnlandmark.dataset_conversion.synthetic import make_synthetic_dataset
    from nnlandmark.planning import plan_and_preprocess
    from nnlandmark.trainers.run import build_trainer
    from nnlandmark.trainers.variants import nnLandmarkTrainer_CPU_SpatialSoftmax_Fine

    class nnLandmarkTrainer_tinyFine(nnLandmarkTrainer_CPU_SpatialSoftmax_Fine):  # noqa: F841  (found by name)
        epochs, iterations, val_iterations, landmark_offset = 1, 2, 1, 5

    make_synthetic_dataset(str(nnunet_dirs / "nnUNet_raw"), 995, "Fine", n_train=5, n_test=0, size=32)
    plan_and_preprocess(995, ("3d_fullres",))
    monkeypatch.setenv("nnUNet_n_proc_DA", "0")
    trainer = build_trainer(995, "3d_fullres", 0, "nnLandmarkTrainer_tinyFine", "nnUNetPlans", False,
                            torch.device("cpu"))
    trainer.initialize()
    assert trainer.loss.local_radius == 3.0
    loader, _ = trainer.get_dataloaders()
    assert loader.data_loader.oversample_foreground_percent == 1.0          # every patch around a landmark
    loaded = trainer.configure_rotation_dummyDA_mirroring_and_inital_patch_size()[2]
    assert list(loader.data_loader.patch_size) == list(loaded)
    spatial = [t for t in loader.data_loader.transforms.transforms if type(t) is SpatialTransform]
    assert len(spatial) == 1 and spatial[0].random_crop
    assert spatial[0].patch_center_dist_from_border == [s / 2 - 5 for s in loaded]
    batch = next(loader)
    assert np.isfinite(trainer.train_step(batch)["loss"])
    assert trainer.validation_step(batch)["error_count"].sum() >= 1


def _bare(name, **attributes):
    """An instance of trainer ``name`` without nnU-Net's set-up, holding only ``attributes``."""
    cls = trainer_class_by_name(name)
    trainer = cls.__new__(cls)
    trainer.__dict__.update(output_folder="out", print_to_log_file=lambda *a: None, **attributes)
    return trainer


def _epochs_saved(trainer, ema_per_epoch):
    """Call save_epoch_checkpoints after each epoch's EMA error; returns {epoch: checkpoint files written} and
    {file: the best EMA error it holds, at its last save}."""
    saved, holds = {}, {}

    def save_checkpoint(filename):
        saved.setdefault(trainer.current_epoch, []).append(filename.rsplit("/", 1)[-1])
        holds[filename.rsplit("/", 1)[-1]] = trainer._best_ema
    trainer.save_checkpoint = save_checkpoint
    for epoch, ema in enumerate(ema_per_epoch):
        trainer.current_epoch = epoch
        trainer.logger = SimpleNamespace(get_value=lambda key, step: ema)
        trainer.save_epoch_checkpoints()
    return saved, holds


def test_best_checkpoint_follows_the_lowest_ema_landmark_error_also_after_a_resume():
    trainer = _bare("nnLandmarkTrainer_CPU", save_every=3, num_epochs=8, _best_ema=None)
    saved, _ = _epochs_saved(trainer, [5.0, 3.0, float("nan"), 4.0, 2.5])
    assert saved == {0: ["checkpoint_best.pth"], 1: ["checkpoint_best.pth"], 2: ["checkpoint_latest.pth"],
                     4: ["checkpoint_best.pth"]}
    # --c restores _best_ema from checkpoint_latest.pth (nnU-Net's load_checkpoint), which holds its own epoch's best
    trainer = _bare("nnLandmarkTrainer_CPU", save_every=1, num_epochs=8, _best_ema=None)
    saved, holds = _epochs_saved(trainer, [3.0])
    assert saved == {0: ["checkpoint_best.pth", "checkpoint_latest.pth"]} and holds["checkpoint_latest.pth"] == 3.0
    resumed = _bare("nnLandmarkTrainer_CPU", save_every=3, num_epochs=8, _best_ema=holds["checkpoint_latest.pth"])
    saved, _ = _epochs_saved(resumed, [9.0, 3.5, 2.0])         # a worse epoch keeps the best
    assert saved == {2: ["checkpoint_best.pth", "checkpoint_latest.pth"]}


def test_curve_variants_keep_a_snapshot_every_five_epochs():
    trainer = _bare("nnLandmarkTrainer_CPU_SpatialSoftmax_Curve", save_every=100, num_epochs=12, _best_ema=1.0)
    assert _epochs_saved(trainer, [2.0] * 12)[0] == {4: ["checkpoint_epoch_0005.pth"],
                                                     9: ["checkpoint_epoch_0010.pth"]}
