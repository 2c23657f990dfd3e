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


def test_coordinate_channels_append_the_voxel_position_from_minus_one_to_one():
    from types import SimpleNamespace
    from nnlandmark.trainers.coordinate_channels import WithCoordinateChannels

    class Identity(torch.nn.Module):
        decoder = SimpleNamespace(deep_supervision=True)

        def forward(self, x):
            return x

    wrapped = WithCoordinateChannels(Identity())
    out = wrapped(torch.full((2, 1, 3, 5, 2), 7.0))
    assert out.shape == (2, 4, 3, 5, 2) and torch.all(out[:, 0] == 7)
    assert out[1, 1, :, 0, 0].tolist() == [-1, 0, 1]                   # first spatial axis
    assert out[0, 2, 0, :, 1].tolist() == [-1, -0.5, 0, 0.5, 1]         # second
    assert out[0, 3, 2, 4, :].tolist() == [-1, 1]                      # third
    wrapped.decoder.deep_supervision = False                            # nnU-Net's switch reaches the inner network
    assert Identity.decoder.deep_supervision is False


def test_the_coords_variant_builds_a_network_with_three_more_input_channels():
    from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager
    from nnlandmark.trainers.coordinate_channels import WithCoordinateChannels
    arch = {"network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
            "arch_kwargs": {"n_stages": 2, "features_per_stage": [4, 8], "conv_op": "torch.nn.modules.conv.Conv3d",
                            "kernel_sizes": [[3, 3, 3]] * 2, "strides": [[1, 1, 1], [2, 2, 2]],
                            "n_conv_per_stage": [1, 1], "n_conv_per_stage_decoder": [1], "conv_bias": True,
                            "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d", "norm_op_kwargs": None,
                            "dropout_op": None, "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
                            "nonlin_kwargs": None},
            "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"]}
    configuration = ConfigurationManager({"architecture": arch, "patch_size": [8, 8, 8]})
    network = trainer_class_by_name("nnLandmarkTrainer_CPU_Coords").build_network_architecture(
        PlansManager.__new__(PlansManager), configuration, 1, 4, False)
    assert isinstance(network, WithCoordinateChannels)
    assert network.network.encoder.stages[0][0].convs[0].conv.in_channels == 4
    assert network(torch.zeros(1, 1, 8, 8, 8)).shape == (1, 3, 8, 8, 8)  # N = 3 landmarks, no background
    assert not isinstance(nnLandmarkTrainer.build_network_architecture(
        PlansManager.__new__(PlansManager), configuration, 1, 4, False), WithCoordinateChannels)


def test_the_whole_volume_configuration_keeps_the_cone_radius_in_mm():
    from types import SimpleNamespace
    plans = SimpleNamespace(get_configuration=lambda name: SimpleNamespace(spacing=[2.0, 2.0, 2.5]))
    whole = SimpleNamespace(configuration_name="3d_whole", heatmap_radius=15.0, plans_manager=plans,
                            configuration_manager=SimpleNamespace(spacing=[4.0, 4.0, 5.0]))
    assert nnLandmarkTrainer.heatmap_radius_here(whole) == 7.5             # 15 voxels x 2 mm = 30 mm = 7.5 x 4 mm
    fullres = SimpleNamespace(**{**vars(whole), "configuration_name": "3d_fullres"})
    assert nnLandmarkTrainer.heatmap_radius_here(fullres) == 15.0          # the paper's radius elsewhere
