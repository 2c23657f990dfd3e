"""Fabricated prediction files shared by the evaluation tests."""
import json

import numpy as np


def write_prediction(folder, case, points):
    folder.mkdir(parents=True, exist_ok=True)
    landmarks = {name: {"label": i + 1, "voxel": [0, 0, 0], "world": list(map(float, xyz)), "likelihood": 0.9}
                 for i, (name, xyz) in enumerate(points.items())}
    (folder / f"{case}.json").write_text(json.dumps(
        {"case": case, "image": f"{case}_0000.nii.gz", "coordinate_system": "LPS", "landmarks": landmarks}))


def rotation(angles):
    """3x3 rotation matrix Rx(a) @ Ry(b) @ Rz(c) for fabricated oblique images."""
    a, b, c = angles
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rx @ ry @ rz
