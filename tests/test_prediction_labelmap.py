"""--save_labelmap: predicted points as cubes on the input image's own grid."""
import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from nnlandmark.errors import LandmarkError
from nnlandmark.labelmaps import prediction_labelmap


def test_cubes_sit_on_the_predicted_voxels_of_the_input_grid(tmp_path, oblique_image):
    sitk.WriteImage(oblique_image(), str(tmp_path / "case_0000.nrrd"))
    image = sitk.ReadImage(str(tmp_path / "case_0000.nrrd"))
    prediction = {"landmarks": {
        "a": {"label": 1, "voxel": [3.4, 4.6, 2.2], "present": True},
        "b": {"label": 2, "voxel": [10.5001, 1.2, 6.9]},
        "gone": {"label": 3, "voxel": [8.0, 8.0, 4.0], "present": False},
        "off": {"label": 4, "voxel": [40.0, 1.0, 1.0]},          # outside: drawn nowhere, no error
        "twin": {"label": 5, "voxel": [3.45, 4.55, 2.2]}}}      # shares a's voxel: a keeps it
    labelmap = prediction_labelmap(str(tmp_path / "case_0000.nrrd"), prediction)
    assert labelmap.GetSize() == image.GetSize() and labelmap.GetOrigin() == image.GetOrigin()
    assert labelmap.GetDirection() == image.GetDirection() and labelmap.GetSpacing() == image.GetSpacing()
    seg = sitk.GetArrayFromImage(labelmap)
    assert set(np.unique(seg)) <= {0, 1, 2, 5} and 3 not in seg and 4 not in seg
    assert (seg == 2).sum() == 27
    assert np.array_equal(ndimage.center_of_mass(seg == 2)[::-1], [11, 1, 7])
    assert seg[2, 5, 3] == 1  # numpy (z, y, x) of a's nearest voxel (3, 5, 2)


def test_each_predicted_instance_gets_a_cube_of_its_class_value(tmp_path, oblique_image):
    sitk.WriteImage(oblique_image(), str(tmp_path / "case_0000.nrrd"))
    prediction = {"case": "case", "landmarks": {"a": {"label": 1, "voxel": [3.0, 4.0, 2.0]}},
                  "instances": {"contact": [{"voxel": [10.0, 3.0, 6.0]}, {"voxel": [12.2, 10.0, 3.0]}]}}
    seg = sitk.GetArrayFromImage(prediction_labelmap(str(tmp_path / "case_0000.nrrd"), prediction, {"contact": 7}))
    blobs, count = ndimage.label(seg == 7)
    assert count == 2 and (seg == 7).sum() == 54
    centres = sorted(c[::-1] for c in ndimage.center_of_mass(seg == 7, blobs, [1, 2]))   # (x, y, z)
    np.testing.assert_allclose(centres, [[10, 3, 6], [12, 10, 3]])
    with pytest.raises(LandmarkError, match="no label value for the instances of 'contact'"):
        prediction_labelmap(str(tmp_path / "case_0000.nrrd"), prediction)
