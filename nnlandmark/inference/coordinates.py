"""Exact inverse of nnU-Net's preprocessing for points: resampling, cropping, transpose (DESIGN.md §2, §6)."""
import numpy as np

from nnlandmark.geometry import numpy_to_itk_index


def preprocessed_to_original_zyx(points, preprocessed_shape, properties: dict, transpose_backward) -> np.ndarray:
    """(..., 3) positions in the preprocessed array -> (..., 3) numpy positions in the original array.

    Voxel centres map consistently: p_crop = (p + 0.5) * n_crop / n_pre - 0.5, then the crop offset is
    added and the axes are put back in the original order.
    """
    points = np.asarray(points, float)
    shape_crop = np.asarray(properties['shape_after_cropping_and_before_resampling'], float)
    p = (points + 0.5) * shape_crop / np.asarray(preprocessed_shape, float) - 0.5
    p = p + np.array([lo for lo, _ in properties['bbox_used_for_cropping']], float)
    return p[..., list(transpose_backward)]


def original_zyx_to_preprocessed(points, preprocessed_shape, properties: dict, transpose_forward) -> np.ndarray:
    """Forward map, the inverse of :func:`preprocessed_to_original_zyx` (used to place targets and in tests)."""
    p = np.asarray(points, float)[..., list(transpose_forward)]
    p = p - np.array([lo for lo, _ in properties['bbox_used_for_cropping']], float)
    shape_crop = np.asarray(properties['shape_after_cropping_and_before_resampling'], float)
    return (p + 0.5) * np.asarray(preprocessed_shape, float) / shape_crop - 0.5


def preprocessed_to_original_index(points, preprocessed_shape, properties: dict, transpose_backward) -> np.ndarray:
    """Preprocessed array position -> continuous ITK index (x, y, z) of the original image file."""
    return numpy_to_itk_index(preprocessed_to_original_zyx(points, preprocessed_shape, properties,
                                                           transpose_backward))
