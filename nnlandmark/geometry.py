"""Every coordinate mapping, the one place where axis orders are reversed or permuted (docs/design.md, "Coordinates").

A voxel coordinate is the continuous ITK index (i, j, k) = (x, y, z) of an image file; numpy arrays of that image
(SimpleITK's ``GetArrayFromImage``, nnU-Net's data) are indexed (z, y, x). World is ITK's LPS in millimetres:
p = origin + D @ (spacing * index); NIfTI/nibabel world is RAS. nnU-Net's preprocessing transposes, crops and
resamples the numpy array; ``preprocessed_to_original_index`` and ``world_to_preprocessed`` undo and redo that for
points.
"""
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import SimpleITK as sitk

from nnlandmark.errors import LandmarkError

ORTHONORMAL_TOLERANCE = 1e-4  # |D^T D - I|: float32 headers (NIfTI quaternions, 6-digit text) stay far below it


@dataclass(frozen=True)
class Geometry:
    origin: np.ndarray      # (3,) mm, LPS
    spacing: np.ndarray     # (3,) mm, ITK order (x, y, z)
    direction: np.ndarray   # (3, 3), columns are the axis directions

    @classmethod
    def of_image(cls, image) -> "Geometry":
        """Of a SimpleITK image or an ``ImageFileReader`` that has read the header."""
        return cls.of_sitk_stuff({"origin": image.GetOrigin(), "spacing": image.GetSpacing(),
                                  "direction": image.GetDirection()})

    @classmethod
    def of_sitk_stuff(cls, stuff: dict) -> "Geometry":
        """From the ``sitk_stuff`` dict that nnU-Net's SimpleITKIO keeps in the case properties."""
        return cls(np.asarray(stuff["origin"], float), np.asarray(stuff["spacing"], float),
                   np.asarray(stuff["direction"], float).reshape(3, 3))

    def index_to_world(self, index) -> np.ndarray:
        """(..., 3) continuous ITK index -> (..., 3) LPS mm."""
        index = np.asarray(index, float)
        return self.origin + (index * self.spacing) @ self.direction.T

    def world_to_index(self, world) -> np.ndarray:
        """(..., 3) LPS mm -> (..., 3) continuous ITK index (D.T inverts D, a rotation: see ``check_grid``)."""
        world = np.asarray(world, float)
        return ((world - self.origin) @ self.direction) / self.spacing

    def index_axis_along_world(self, world_axis: int) -> int:
        """The ITK index axis whose direction runs closest to world axis ``world_axis`` (0 = LPS x, left-right)."""
        return int(np.argmax(np.abs(self.direction[world_axis])))


def axes_defect(axes) -> Optional[str]:
    """Why the columns of a 3x3 matrix (axes of any length) are no scaled rotation: 'not finite', 'singular' or
    'sheared'; None if they are. Only then is world <-> index a rotation, which ITK and every mapping here assume."""
    axes = np.asarray(axes, float).reshape(3, 3)
    if not np.all(np.isfinite(axes)):
        return "not finite"
    lengths = np.linalg.norm(axes, axis=0)
    if np.any(lengths < 1e-12):
        return "singular"
    unit = axes / lengths
    if abs(np.linalg.det(unit)) < 1e-3:
        return "singular"
    if np.abs(unit.T @ unit - np.eye(3)).max() >= ORTHONORMAL_TOLERANCE:
        return "sheared"
    return None


def check_grid(spacing, direction, source: str, spacing_field: str = "spacing",
               direction_field: str = "direction") -> None:
    """Refuse a grid that ITK reads but cannot place voxels with (zero or negative spacing, a direction that is not
    a rotation): landmarks would be mapped with the wrong matrix. ``source`` (the file) and the header fields to
    fix are named in the message."""
    spacing = np.asarray(spacing, float)
    if not np.all(np.isfinite(spacing) & (spacing > 0)):
        raise LandmarkError(f"{source} has spacing {_plain(spacing)}: every spacing must be a positive number (fix "
                            f"the header field {spacing_field})")
    defect = axes_defect(direction)
    if defect == "sheared":
        raise sheared_grid_error(source)
    if defect is not None:
        what = "NaN or infinite entries" if defect == "not finite" else "two axes along one line or an axis of length 0"
        raise LandmarkError(f"{source} has a direction matrix {_plain(direction)} with {what}: its columns must be "
                            f"perpendicular unit axis directions (fix the header field {direction_field})")
    lengths = np.linalg.norm(np.asarray(direction, float).reshape(3, 3), axis=0)
    if np.abs(lengths - 1).max() >= ORTHONORMAL_TOLERANCE:
        raise LandmarkError(f"{source} has a direction matrix whose axes have lengths {_plain(lengths)} instead of 1: "
                            f"keep the voxel size in the spacing only (fix the header fields {direction_field} and "
                            f"{spacing_field})")


def sheared_grid_error(source) -> LandmarkError:
    """Axes that are not perpendicular (CT gantry tilt): no rotation maps such voxels, only resampling helps."""
    return LandmarkError(f"{source} has a sheared direction matrix (gantry tilt?): resample it onto an orthogonal "
                         f"grid (e.g. SimpleITK.Resample, Slicer 'Harden transform') before using it")


def _plain(values) -> str:
    """Numbers for a message, as a user wrote them: [1, 0, 1]."""
    return "[" + ", ".join(f"{v:.6g}" for v in np.asarray(values, float).ravel()) + "]"


def itk_order(zyx) -> np.ndarray:
    """numpy (z, y, x) positions, sizes or spacings -> ITK (x, y, z) order, dtype kept."""
    return np.asarray(zyx)[..., ::-1].copy()


def numpy_order(xyz) -> np.ndarray:
    """ITK (x, y, z) positions, sizes or spacings -> numpy (z, y, x) order, dtype kept (the same reversal)."""
    return itk_order(xyz)


def numpy_axis(itk_axis: int, ndim: int = 3) -> int:
    """The numpy array axis of ITK index axis ``itk_axis``."""
    return ndim - 1 - itk_axis


def volume_in_itk_order(array_zyx: np.ndarray) -> np.ndarray:
    """A (z, y, x) array as (x, y, z), so that ``volume[i, j, k]`` is the voxel at ITK index (i, j, k) (a view)."""
    return np.transpose(array_zyx, (2, 1, 0))


def voxel_grid_itk(shape_zyx) -> np.ndarray:
    """(*shape_zyx, 3) ITK index (x, y, z) of every voxel of a numpy array of ``shape_zyx``."""
    return itk_order(np.stack(np.meshgrid(*[np.arange(s) for s in shape_zyx], indexing="ij"), -1))


def lps_to_ras(xyz) -> np.ndarray:
    """LPS <-> RAS (the same operation both ways): negate x and y."""
    return np.asarray(xyz, float) * np.array([-1.0, -1.0, 1.0])


def preprocessed_left_right_axis(geometry: Geometry, transpose_forward: Sequence[int]) -> int:
    """The preprocessed array axis that runs along the patient's left-right (world LPS x): ITK axis i is numpy
    axis ``numpy_axis(i)`` of the original array, and preprocessed axis p is original axis transpose_forward[p]."""
    return list(transpose_forward).index(numpy_axis(geometry.index_axis_along_world(0)))


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
    """Forward map, the inverse of :func:`preprocessed_to_original_zyx`."""
    p = np.asarray(points, float)[..., list(transpose_forward)]
    p = p - np.array([lo for lo, _ in properties['bbox_used_for_cropping']], float)
    shape_crop = np.asarray(properties['shape_after_cropping_and_before_resampling'], float)
    return (p + 0.5) * np.asarray(preprocessed_shape, float) / shape_crop - 0.5


def preprocessed_to_original_index(points, preprocessed_shape, properties: dict, transpose_backward) -> np.ndarray:
    """Preprocessed array position -> continuous ITK index (x, y, z) of the original image file."""
    return itk_order(preprocessed_to_original_zyx(points, preprocessed_shape, properties, transpose_backward))


def preprocessed_spacing(configuration_spacing, properties: dict, transpose_forward) -> np.ndarray:
    """(3,) mm spacing of a preprocessed array's axes: the configuration's, where a 2d configuration (two values)
    keeps the original spacing along the first (slice) axis, as nnU-Net's preprocessing does."""
    spacing = [float(s) for s in configuration_spacing]
    if len(spacing) == 2:
        spacing = [float(properties['spacing'][transpose_forward[0]])] + spacing
    return np.asarray(spacing)


def world_to_preprocessed(world, geometry: Geometry, preprocessed_shape, properties: dict,
                          transpose_forward) -> np.ndarray:
    """(..., 3) world LPS mm -> (..., 3) positions in the preprocessed array (NaN rows stay NaN)."""
    return original_zyx_to_preprocessed(numpy_order(geometry.world_to_index(world)), preprocessed_shape, properties,
                                        transpose_forward)


def sitk_stuff(image) -> dict:
    """The geometry dict nnU-Net's SimpleITKIO keeps per case, of a SimpleITK image or header reader."""
    return {'spacing': image.GetSpacing(), 'origin': image.GetOrigin(), 'direction': image.GetDirection()}


def empty_grid_like(header, pixel_type=sitk.sitkUInt8) -> sitk.Image:
    """A blank 3D image on the grid of a SimpleITK image or header reader (the first three axes of a 4D one; a 2D
    one as a volume of one slice, ``as_volume``)."""
    dimension = len(header.GetSize())
    grid = sitk.Image([int(s) for s in header.GetSize()[:3]], pixel_type)
    grid.SetOrigin(header.GetOrigin()[:3])
    grid.SetSpacing(header.GetSpacing()[:3])
    grid.SetDirection(np.asarray(header.GetDirection(), float).reshape(dimension, dimension)[:3, :3].ravel())
    return as_volume(grid)


SLICE_THICKNESS_MM = 1.0   # the spacing along k of a 2D image made a volume of one slice


def as_volume(image: sitk.Image, pixel_spacing=None) -> sitk.Image:
    """A 2D image as a volume of one slice, so that every mapping here stays 3D: pixel (i, j) is voxel (i, j, 0),
    world (x, y) is (x, y, 0) (Slicer places a PNG so), the third axis runs along z; a 3D image as it is.
    ``pixel_spacing`` (x, y mm) replaces the spacing of a 2D image or a volume of one slice (in a copy)."""
    if image.GetDimension() == 2:
        volume = sitk.JoinSeries(image)
        volume.SetDirection(volume_direction(image.GetDirection()))
        volume.SetSpacing([*image.GetSpacing(), SLICE_THICKNESS_MM])
        volume.SetOrigin([*image.GetOrigin(), 0.0])
    else:
        volume = image
    if pixel_spacing is None:
        return volume
    if volume.GetSize()[2] != 1:
        raise LandmarkError(f"a pixel spacing is given for 2D images, but this is a 3D volume of "
                            f"{volume.GetSize()[2]} slices")
    volume = sitk.Image(volume)   # a copy: the caller's image keeps its spacing
    volume.SetSpacing([*map(float, pixel_spacing), volume.GetSpacing()[2]])
    return volume


def volume_direction(direction) -> np.ndarray:
    """The (9,) direction of a 2D image's (4,) one made a volume of one slice (``as_volume``); a 3D one as it is."""
    direction = np.asarray(direction, float).ravel()
    if direction.size == 9:
        return direction
    axes = np.eye(3)
    axes[:2, :2] = direction.reshape(2, 2)
    return axes.ravel()
