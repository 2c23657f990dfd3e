"""Trainer registry, variants and the in-training landmark metric."""
import pytest
import torch

from nnlandmark.errors import LandmarkError
from nnlandmark.trainers import all_trainer_classes, trainer_class_by_name
from nnlandmark.trainers.nnLandmarkTrainer import nnLandmarkTrainer, patch_landmark_errors
from nnlandmark.trainers.variants import nnLandmarkTrainer_MSE


def test_paper_ablation_variants_change_one_attribute():
    classes = all_trainer_classes()
    for r in (7, 11, 19, 23):
        assert classes[f"nnLandmarkTrainer_EDT{r}"].heatmap_radius == r
    for k in (10, 50, 100):
        assert classes[f"nnLandmarkTrainer_TopK{k}"].topk_percent == k
    assert classes["nnLandmarkTrainer_5epochs"].epochs == 5
    assert nnLandmarkTrainer.heatmap_radius == 15 and nnLandmarkTrainer.topk_percent == 20
    assert (nnLandmarkTrainer.epochs, nnLandmarkTrainer.iterations) == (1000, 250)
    assert issubclass(nnLandmarkTrainer_MSE, nnLandmarkTrainer)
    assert nnLandmarkTrainer.coordinate_weight == 0 and classes["nnLandmarkTrainer_CPU_SoftArgmax"].coordinate_weight > 0
    assert classes["nnLandmarkTrainer_CPU_SoftArgmax_Curve"].snapshot_every == 5


def test_each_loss_option_builds_its_loss_with_the_trainer_settings():
    from types import SimpleNamespace
    from nnlandmark.losses.landmark_loss import (TopKBCECoordinateLoss, TopKBCEHeatmapLoss,
                                                 TopKBCESpatialSoftmaxLoss)
    expected = {"nnLandmarkTrainer_CPU": TopKBCEHeatmapLoss,
                "nnLandmarkTrainer_CPU_SoftArgmax": TopKBCECoordinateLoss,
                "nnLandmarkTrainer_CPU_SpatialSoftmax": TopKBCESpatialSoftmaxLoss,
                "nnLandmarkTrainer_CPU_SpatialSoftmax_Fine": TopKBCESpatialSoftmaxLoss}
    for name, loss_class in expected.items():
        cls = trainer_class_by_name(name)
        settings = {a: getattr(cls, a) for a in ("softmax_weight", "coordinate_weight", "topk_percent",
                                                 "local_softmax_radius")}
        trainer = SimpleNamespace(**settings, num_landmarks=7, heatmap_radius_here=lambda: 6.5,
                                  configuration_name="3d_whole", print_to_log_file=print)
        loss = nnLandmarkTrainer._build_loss(trainer)
        assert type(loss) is loss_class and (loss.num_landmarks, loss.radius, loss.k_percent) == (7, 6.5, 20.0)
        assert getattr(loss, "local_radius", 0.0) == (3.0 if name.endswith("_Fine") else 0.0)
    assert trainer_class_by_name("nnLandmarkTrainer_CPU_SpatialSoftmax_Curve").snapshot_every == 5


def test_unknown_trainer_names_the_alternatives():
    with pytest.raises(LandmarkError, match="unknown trainer 'nnUNetTrainer'.*nnLandmarkTrainer_EDT7"):
        trainer_class_by_name("nnUNetTrainer")
    assert trainer_class_by_name("nnLandmarkTrainer_TopK30").topk_percent == 30


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


def test_a_target_margin_loads_larger_patches_and_trains_the_network_on_their_centre(tmp_path, monkeypatch):
    """... also with the soft-argmax term, whose landmark positions must be shifted into the network's patch."""
    import numpy as np
    from nnlandmark.losses.landmark_loss import TopKBCECoordinateLoss
    from nnlandmark.dataset_conversion.synthetic import make_synthetic_dataset
    from nnlandmark.planning import plan_and_preprocess
    from nnlandmark.trainers.run import build_trainer
    from test_resenc import nnLandmarkTrainer_tiny

    class nnLandmarkTrainer_tinyMargin4(nnLandmarkTrainer_tiny):  # noqa: F841  (found by name as a subclass)
        target_margin, coordinate_weight = 4, 1.0

    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.setenv(name, str(tmp_path / name))
    make_synthetic_dataset(str(tmp_path / "nnUNet_raw"), 994, "Margin", n_train=5, n_test=0, size=32)
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
    from types import SimpleNamespace
    plans = SimpleNamespace(get_configuration=lambda name: SimpleNamespace(spacing=[2.0, 2.0, 2.5]))
    whole = SimpleNamespace(configuration_name="3d_whole", heatmap_radius=15.0, plans_manager=plans,
                            configuration_manager=SimpleNamespace(spacing=[4.0, 4.0, 5.0]))
    assert nnLandmarkTrainer.heatmap_radius_here(whole) == 7.5             # 15 voxels x 2 mm = 30 mm = 7.5 x 4 mm
    fullres = SimpleNamespace(**{**vars(whole), "configuration_name": "3d_fullres"})
    assert nnLandmarkTrainer.heatmap_radius_here(fullres) == 15.0          # the paper's radius elsewhere


def test_a_landmark_offset_centres_patches_up_to_that_far_from_the_sampled_landmark():
    """nnU-Net's loader centres a foreground patch on its landmark; the fine stage's crop moves it off-centre, uniformly
    within the offset along each axis, and keeps the landmark's label in the patch."""
    import numpy as np
    from batchgeneratorsv2.transforms.spatial.spatial import SpatialTransform
    from nnlandmark.trainers.nnLandmarkTrainer import off_centre_crop
    from nnlandmark.losses.heatmap import landmark_centres
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


def test_a_fine_stage_trainer_wires_landmark_patches_and_the_off_centre_crop_into_nnunets_pipeline(tmp_path,
                                                                                                  monkeypatch):
    import numpy as np
    from batchgeneratorsv2.transforms.spatial.spatial import SpatialTransform
    from nnlandmark.dataset_conversion.synthetic import make_synthetic_dataset
    from nnlandmark.planning import plan_and_preprocess
    from nnlandmark.trainers.run import build_trainer
    from test_resenc import nnLandmarkTrainer_tiny

    class nnLandmarkTrainer_tinyFine(nnLandmarkTrainer_tiny):  # noqa: F841  (found by name as a subclass)
        landmark_offset, local_softmax_radius, softmax_weight = 5, 3.0, 1.0

    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.setenv(name, str(tmp_path / name))
    make_synthetic_dataset(str(tmp_path / "nnUNet_raw"), 995, "Fine", n_train=5, n_test=0, size=32)
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
