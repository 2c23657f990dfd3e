"""Voxel <-> world conversion, the single place where index conventions live (DESIGN.md §2).

A voxel coordinate is the continuous ITK index (i, j, k) = (x, y, z) of an image file; world is
ITK's LPS in millimetres: p = origin + D @ (spacing * index).
"""
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk


@dataclass(frozen=True)
class Geometry:
    origin: np.ndarray      # (3,) mm, LPS
    spacing: np.ndarray     # (3,) mm, ITK order (x, y, z)
    direction: np.ndarray   # (3, 3), columns are the axis directions

    @classmethod
    def of_image(cls, image: sitk.Image) -> "Geometry":
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
        """(..., 3) LPS mm -> (..., 3) continuous ITK index."""
        world = np.asarray(world, float)
        return ((world - self.origin) @ self.direction) / self.spacing


def numpy_to_itk_index(zyx) -> np.ndarray:
    """numpy (z, y, x) array position -> ITK (i, j, k) = (x, y, z); the only axis reversal we do."""
    return np.asarray(zyx, float)[..., ::-1].copy()


def lps_to_ras(xyz) -> np.ndarray:
    """LPS <-> RAS (the same operation both ways): negate x and y."""
    return np.asarray(xyz, float) * np.array([-1.0, -1.0, 1.0])
