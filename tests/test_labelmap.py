"""Sub-voxel encoded landmark cubes: the blob's centre of mass is the continuous landmark position."""
import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from nnlandmark.labelmaps import landmarks_from_labelmap, landmarks_to_labelmap


def _paint(points, size=24, **kwargs):
    reference = sitk.Image(size, size, size, sitk.sitkUInt8)
    labels = {name: i + 1 for i, name in enumerate(points)}
    return sitk.GetArrayFromImage(landmarks_to_labelmap(reference, points, labels, **kwargs)), labels


def test_half_voxel_offset_adds_the_whole_face_and_hits_the_position_exactly():
    seg, _ = _paint({"a": np.array([10.5, 8.0, 12.0])})  # x + 0.5: all 9 voxels of the x = 12 face
    assert (seg == 1).sum() == 36 and np.all(seg[11:14, 7:10, 12] == 1) and not np.any(seg[:, :, 8])
    np.testing.assert_allclose(ndimage.center_of_mass(seg == 1)[::-1], [10.5, 8.0, 12.0], atol=1e-12)


def test_one_face_voxel_shifts_by_one_28th_of_two_voxels():
    seg, _ = _paint({"a": np.array([10.0, 8.0, 12.0 - 2 / 28])})  # -z: the centre voxel of the z = 10 face
    assert (seg == 1).sum() == 28 and seg[10, 8, 10] == 1
    np.testing.assert_allclose(ndimage.center_of_mass(seg == 1)[::-1], [10.0, 8.0, 12.0 - 2 / 28], atol=1e-12)


def test_random_positions_are_recovered_ten_times_better_than_the_nearest_voxel():
    rng = np.random.default_rng(0)
    errors, rounding = [], []
    for _ in range(200):
        p = rng.uniform(6, 17, 3)
        seg, labels = _paint({"a": p})
        errors.append(np.linalg.norm(landmarks_from_labelmap(seg, labels)["a"] - p))
        rounding.append(np.linalg.norm(np.rint(p) - p))
        plain, _ = _paint({"a": p}, subvoxel=False)
        assert (plain == 1).sum() == 27
        np.testing.assert_allclose(landmarks_from_labelmap(plain, labels)["a"], np.rint(p), atol=1e-12)
    assert np.all(np.array(errors) <= np.array(rounding) + 1e-9) and max(errors) < 0.29
    assert np.mean(errors) < 0.07 and np.mean(rounding) > 0.4  # uniform offsets: ~0.05 vs ~0.48 voxel


def test_close_landmarks_keep_their_own_cube_voxels():
    seg, _ = _paint({"a": np.array([10.0, 10.0, 10.0]), "b": np.array([13.4, 10.0, 10.0])})
    # b's face at x = 11 lies inside a's cube: a keeps it, b's centre of mass stays on its own side
    assert np.all(seg[9:12, 9:12, 9:12] == 1) and np.all(seg[9:12, 9:12, 12:15] == 2)
    assert ndimage.center_of_mass(seg == 2)[::-1][0] > 12.9


def _centre(seg, value):
    return np.array(ndimage.center_of_mass(seg == value)[::-1])


def test_a_cube_cut_by_the_border_is_trimmed_back_onto_its_landmark():
    seg, _ = _paint({"a": np.array([0.0, 10.0, 10.0])})  # the cube keeps x = 0, 1; dropping x = 1 recentres it
    assert (seg == 1).sum() == 9 and np.all(seg[9:12, 9:12, 0] == 1)
    np.testing.assert_allclose(_centre(seg, 1), [0, 10, 10], atol=1e-12)
    plain, _ = _paint({"a": np.array([0.0, 10.0, 10.0])}, subvoxel=False)
    np.testing.assert_allclose(_centre(plain, 1), [0.5, 10, 10], atol=1e-12)  # the paper's cube: half a voxel off


def test_landmarks_1_2_voxels_apart_keep_their_positions():
    a, b = np.array([10.0, 10.0, 10.0]), np.array([11.2, 10.0, 10.0])
    seg, _ = _paint({"a": a, "b": b})
    np.testing.assert_allclose(_centre(seg, 1), a, atol=1e-12)  # a: its x = 10 plane; b owns x = 11, 12
    assert np.linalg.norm(_centre(seg, 2) - b) < 0.11
    plain, _ = _paint({"a": a, "b": b}, subvoxel=False)  # shared voxels split only: 0.5 and 0.3 voxel off
    np.testing.assert_allclose([_centre(plain, 1)[0], _centre(plain, 2)[0]], [9.5, 11.5], atol=1e-12)


def test_two_landmarks_nearest_to_the_same_voxel_both_keep_a_blob_on_their_side():
    seg, _ = _paint({"a": np.array([10.3, 10.0, 10.0]), "b": np.array([9.75, 10.0, 10.0])})
    np.testing.assert_allclose(_centre(seg, 1), [11, 10, 10], atol=1e-12)  # b is nearer to the whole x = 10 plane
    assert abs(_centre(seg, 2)[0] - 9.75) < 0.1 and (seg == 1).sum() == 9
