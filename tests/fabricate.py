"""Fabricated prediction files shared by the evaluation tests."""
import json


def write_prediction(folder, case, points):
    folder.mkdir(parents=True, exist_ok=True)
    landmarks = {name: {"label": i + 1, "voxel": [0, 0, 0], "world": list(map(float, xyz)), "likelihood": 0.9}
                 for i, (name, xyz) in enumerate(points.items())}
    (folder / f"{case}.json").write_text(json.dumps(
        {"case": case, "image": f"{case}_0000.nii.gz", "coordinate_system": "LPS", "landmarks": landmarks}))
