"""Preprocessed -> original voxel -> world, checked against nnU-Net's own preprocessing and SimpleITK."""
import numpy as np
import pytest
import SimpleITK as sitk
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnlandmark.geometry import (Geometry, itk_order, lps_to_ras, original_zyx_to_preprocessed,
                                 preprocessed_to_original_index, preprocessed_to_original_zyx)
from nnlandmark.io.images import images_to_nnunet_array

OBLIQUE = sitk.VersorTransform((0.3, -0.5, 0.8), 0.6).GetMatrix()  # a proper rotation


def _plans(transpose_forward, target_spacing_zyx_transposed):
    arch = {"network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
            "arch_kwargs": {}, "_kw_requires_import": []}
    resampling = {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": False}
    configuration = {
        "data_identifier": "x", "preprocessor_name": "DefaultPreprocessor", "batch_size": 2,
        "patch_size": [16, 16, 16], "median_image_size_in_voxels": [32, 32, 32],
        "spacing": list(target_spacing_zyx_transposed), "normalization_schemes": ["NoNormalization"] * 3,
        "use_mask_for_norm": [False] * 3, "resampling_fn_data": "resample_data_or_seg_to_shape",
        "resampling_fn_seg": "resample_data_or_seg_to_shape", "resampling_fn_data_kwargs": resampling,
        "resampling_fn_seg_kwargs": {**resampling, "is_seg": True, "order": 1},
        "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
        "resampling_fn_probabilities_kwargs": {**resampling, "order": 1},
        "architecture": arch, "batch_dice": False}
    return PlansManager({
        "dataset_name": "Dataset999_Test", "plans_name": "p", "original_median_spacing_after_transp": [1, 1, 1],
        "original_median_shape_after_transp": [32, 32, 32], "image_reader_writer": "SimpleITKIO",
        "transpose_forward": list(transpose_forward), "transpose_backward": list(np.argsort(transpose_forward)),
        "configurations": {"3d_fullres": configuration}, "experiment_planner_used": "ExperimentPlanner",
        "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {str(c): {} for c in range(3)}})


def _ramp_images(size_xyz, spacing, origin, direction, zero_border):
    """Three channels whose values are the ITK index i, j, k (+100), with a zero frame that nnU-Net crops."""
    z, y, x = np.meshgrid(*[np.arange(s, dtype=np.float32) for s in size_xyz[::-1]], indexing="ij")
    images = []
    for ramp in (x, y, z):
        values = ramp + 100
        values[:zero_border[2]] = 0
        values[:, :, -zero_border[0]:] = 0
        image = sitk.GetImageFromArray(values)
        image.SetSpacing(spacing); image.SetOrigin(origin); image.SetDirection(direction)
        images.append(image)
    return images


def test_preprocessed_position_maps_to_original_index_and_world():
    """The ramp channels tell, for each preprocessed voxel, which original continuous index it samples."""
    spacing, origin = (0.8, 1.1, 1.9), (12.0, -40.5, 7.25)
    images = _ramp_images((30, 26, 22), spacing, origin, OBLIQUE, zero_border=(4, 0, 3))
    transpose_forward = (2, 0, 1)
    plans_manager = _plans(transpose_forward, (1.3, 1.0, 1.2))
    configuration = plans_manager.get_configuration("3d_fullres")
    data, properties = images_to_nnunet_array(images)
    preprocessor = configuration.preprocessor_class(verbose=False)
    pre, _, properties = preprocessor.run_case_npy(data, None, properties, plans_manager, configuration,
                                                   {"labels": {"background": 0, "a": 1}, "channel_names": {}})
    # the preprocessing really transposed, cropped and resampled
    assert properties["bbox_used_for_cropping"][1][0] == 3 and properties["bbox_used_for_cropping"][0][1] == 26
    assert pre.shape[1:] != properties["shape_after_cropping_and_before_resampling"]

    rng = np.random.default_rng(1)
    interior = [rng.integers(5, n - 5, 40) for n in pre.shape[1:]]  # away from spline edge effects
    points = np.stack(interior, -1)
    truth_index = np.stack([pre[c][tuple(interior)] for c in range(3)], -1) - 100  # (i, j, k) sampled there
    mapped = preprocessed_to_original_index(points, pre.shape[1:], properties, plans_manager.transpose_backward)
    np.testing.assert_allclose(mapped, truth_index, atol=0.01)  # cubic-spline edge ringing stays < 0.01

    world = Geometry.of_sitk_stuff(properties["sitk_stuff"]).index_to_world(mapped)
    for w, ijk in zip(world, mapped):
        np.testing.assert_allclose(w, images[0].TransformContinuousIndexToPhysicalPoint(ijk.tolist()), atol=1e-6)


def test_forward_and_inverse_mapping_are_inverse():
    properties = {"shape_after_cropping_and_before_resampling": (20, 30, 40),
                  "bbox_used_for_cropping": [[2, 22], [5, 35], [0, 40]]}
    points = np.array([[0.0, 0.0, 0.0], [3.25, 17.5, 39.0]])
    forward = original_zyx_to_preprocessed(points, (10, 45, 40), properties, (1, 2, 0))
    np.testing.assert_allclose(preprocessed_to_original_zyx(forward, (10, 45, 40), properties, (2, 0, 1)), points)


def test_voxel_centres_map_consistently_when_halving_resolution():
    """Preprocessed voxel 0 of a 2x downsampled axis covers original voxels 0 and 1: its centre is 0.5."""
    properties = {"shape_after_cropping_and_before_resampling": (10, 10, 10),
                  "bbox_used_for_cropping": [[0, 10], [0, 10], [0, 10]]}
    index = preprocessed_to_original_index([[0, 0, 4]], (5, 10, 10), properties, (0, 1, 2))
    np.testing.assert_allclose(index, [[4.0, 0.0, 0.5]])  # (x, y, z): x=4, y=0, z=(0+0.5)*2-0.5


@pytest.mark.parametrize("direction", [(1, 0, 0, 0, 1, 0, 0, 0, 1), (1, 0, 0, 0, -1, 0, 0, 0, 1), OBLIQUE])
def test_geometry_matches_simpleitk(direction):
    image = sitk.Image(7, 8, 9, sitk.sitkUInt8)
    image.SetSpacing((0.5, 1.0, 2.5)); image.SetOrigin((3.0, -2.0, 10.0)); image.SetDirection(direction)
    geometry = Geometry.of_image(image)
    index = np.array([[1.25, 6.5, 3.0], [0.0, 0.0, 0.0], [6.9, 7.1, 8.8]])
    world = geometry.index_to_world(index)
    expected = [image.TransformContinuousIndexToPhysicalPoint(i.tolist()) for i in index]
    np.testing.assert_allclose(world, expected, atol=1e-9)
    np.testing.assert_allclose(geometry.world_to_index(world), index, atol=1e-9)


def test_axis_order_and_ras():
    np.testing.assert_array_equal(itk_order([[1, 2, 3]]), [[3, 2, 1]])
    np.testing.assert_array_equal(lps_to_ras([10.0, -5.0, 2.0]), [-10.0, 5.0, 2.0])
