"""Channel maxima, their sub-voxel refinement and the shape of the peak."""
import numpy as np
import pytest
import torch

from nnlandmark.heatmaps import (balls_inside, channel_maxima, edt_heatmaps, peak_shape, refine_peaks,
                                 restrict_to_balls, tiles_near_balls)


def test_maxima_are_per_channel_positions_and_values():
    heat = torch.zeros(2, 5, 6, 7)
    heat[0, 1, 2, 3] = 0.9
    heat[1, 4, 5, 6] = 0.4
    peaks, values = channel_maxima(heat)
    assert peaks.tolist() == [[1, 2, 3], [4, 5, 6]]
    np.testing.assert_allclose(values, [0.9, 0.4])


def test_refinement_beats_the_integer_argmax_floor_on_random_subvoxel_cones():
    rng = np.random.default_rng(0)
    centres = torch.tensor(rng.uniform(8, 24, (1, 100, 3)), dtype=torch.float32)
    heat = edt_heatmaps(centres, torch.ones(1, 100, dtype=torch.bool), (32, 32, 32), 15.0)[0]
    peaks, _ = channel_maxima(heat)
    integer_error = np.linalg.norm(peaks - centres[0].numpy(), axis=1).mean()
    refined_error = np.linalg.norm(refine_peaks(heat, peaks) - centres[0].numpy(), axis=1).mean()
    assert 0.4 < integer_error < 0.6      # the floor for uniform offsets (about 0.48 voxel)
    assert refined_error < 0.05


def test_refinement_finds_the_middle_of_a_plateau_and_handles_the_border():
    heat = torch.zeros(2, 10, 10, 10)
    heat[0, 4:7, 2:4, 5] = 0.8            # plateau: middle (5, 2.5, 5)
    heat[1, 0, 0, 0] = 1.0                # peak in the corner: the window is padded, not wrapped
    heat[1, 1, 0, 0] = 1.0
    peaks, _ = channel_maxima(heat)
    refined = refine_peaks(heat, peaks)
    np.testing.assert_allclose(refined, [[5.0, 2.5, 5.0], [0.5, 0.0, 0.0]])


def test_refinement_reads_the_middle_of_a_top_longer_than_a_few_voxels():
    """A trained landmark's top can span several voxels; the argmax is its first voxel in memory order. A window of
    3 voxels around it would end at z = 13 and read 11.5."""
    heat = torch.zeros(1, 30, 30, 30)
    heat[0, 10:17, 20, 20] = 1.0          # a top seven voxels long: middle z = 13
    peaks, _ = channel_maxima(heat)
    assert peaks.tolist() == [[10, 20, 20]]
    np.testing.assert_allclose(refine_peaks(heat, peaks), [[13.0, 20.0, 20.0]])


def test_refinement_reads_only_the_highest_voxels_of_a_lopsided_dome():
    """With every voxel within 0.15 of the maximum, a shoulder on one side counts: z = 19.0 in a 17^3 window, (15.8,
    14.6, 14.6) in a 7^3 one around the argmax. Only the highest 125 count, so the read stays on the top (on real
    MRI: 0.95 mm test MRE instead of 1.38)."""
    heat = torch.zeros(1, 30, 30, 30)
    heat[0, 17:23, 10:20, 10:20] = 0.9    # 600 voxels of shoulder beside the top
    heat[0, 14:17, 14:17, 14:17] = 1.0    # the top: 27 voxels around (15, 15, 15)
    peaks, _ = channel_maxima(heat)
    np.testing.assert_allclose(refine_peaks(heat, peaks), [[15.0, 15.0, 15.0]], atol=1e-3)


def test_restriction_to_a_ball_around_the_prior_picks_the_local_maximum():
    heat = torch.zeros(3, 10, 12, 14, dtype=torch.half)
    heat[:, 1, 1, 1] = 0.9                      # a strong look-alike far away in every channel
    heat[:, 7, 7, 7] = 0.6                      # the landmark near the prior
    centres = np.array([[7, 7, 6], [np.nan] * 3, [40, 40, 40]], float)  # channel 1: no prior; 2: prior far outside
    outside = restrict_to_balls(heat, centres, np.array([3.0, 3.0, 1.5]))
    peaks, values = channel_maxima(heat)
    assert outside == [2]
    assert peaks.tolist() == [[7, 7, 7], [1, 1, 1], [1, 1, 1]] and values[0] == pytest.approx(0.6, abs=1e-3)
    assert heat[0, 7, 7, 4] == -1 and heat[0, 7, 7, 8] == -1 and heat[0, 3, 7, 6] == -1  # ellipsoid radii 3, 3, 1.5
    assert heat[0, 7, 7, 5] == 0 and heat[0, 4, 7, 6] == 0                                 # on or inside it
    assert torch.count_nonzero(heat[1] == -1) == 0


def test_a_search_around_priors_keeps_only_the_tiles_that_overlap_a_ball():
    tiles = [(slice(None), slice(z, z + 32), slice(y, y + 32), slice(x, x + 32))
             for z in (0, 16, 32) for y in (0, 16, 32) for x in (0, 16, 32)]       # 64^3, patch 32, step 16
    radius = np.array([3.0, 3.0, 3.0])
    corner = tiles_near_balls(tiles, np.array([[5.0, 5.0, 5.0]]), radius, (64, 64, 64))
    assert corner == [tiles[0]]                                 # box 2..8 lies in the first tile only
    assert len(tiles_near_balls(tiles, np.array([[32.0, 32.0, 32.0]]), radius, (64, 64, 64))) == 27  # 29..35: all
    edge = tiles_near_balls(tiles, np.array([[5.0, 5.0, 5.0], [5.0, 5.0, 40.0]]), radius, (64, 64, 64))
    assert [t[3].start for t in edge] == [0, 16, 32] and all(t[1].start == t[2].start == 0 for t in edge)
    for unusable in ([np.nan] * 3, [5.0, 5.0, 70.0]):          # a channel searched everywhere needs every tile
        assert len(tiles_near_balls(tiles, np.array([[5.0, 5.0, 5.0], unusable]), radius, (64, 64, 64))) == 27


def test_a_search_in_a_2d_image_keeps_the_tiles_of_its_one_slice_near_the_ball():
    tiles = [(slice(None), 0, slice(y, y + 32), slice(x, x + 32)) for y in (0, 32) for x in (0, 32)]  # nnU-Net's 2d
    kept = tiles_near_balls(tiles, np.array([[0.0, 10.0, 50.0]]), np.array([1.0, 3.0, 3.0]), (1, 64, 64))
    assert kept == [tiles[1]]


def test_a_ball_is_inside_the_volume_when_its_nearest_voxel_is():
    radius = np.array([2.0, 2.0, 1.0])
    centres = np.array([[-1.9, 0, 0], [-2.1, 0, 0], [0, 0, 9.9], [0, 0, 10.1], [np.nan, 0, 0]])
    assert balls_inside(centres, radius, (5, 5, 10)).tolist() == [True, False, True, False, False]


def test_peak_shape_measures_the_half_maximum_ball_and_a_separate_second_peak():
    heat = torch.zeros(2, 40, 40, 40, dtype=torch.half)
    z, y, x = torch.meshgrid(*[torch.arange(40)] * 3, indexing="ij")
    inside = (z - 10) ** 2 + (y - 20) ** 2 + (x - 20) ** 2 <= 4 ** 2     # 257 voxels at or above half maximum
    heat[0][inside] = 0.8
    heat[0, 10, 20, 20] = 1.0
    heat[0, 16, 20, 20] = 0.3      # within twice the half-maximum radius (8 voxels): part of the same peak
    heat[0, 32, 20, 20] = 0.4      # 22 voxels away: a separate second peak
    heat[1] = -1                   # outside every search ball except one voxel
    heat[1, 5, 5, 5] = 0.5
    radius, second = peak_shape(heat, np.array([[10, 20, 20], [5, 5, 5]]), (2.0, 2.0, 2.0))
    assert radius[0] == pytest.approx(2.0 * (3 * 257 / (4 * np.pi)) ** (1 / 3), rel=1e-6)   # about 7.9 mm
    assert second[0] == pytest.approx(0.4, abs=1e-3)
    assert radius[1] == pytest.approx(2.0 * (3 / (4 * np.pi)) ** (1 / 3), rel=1e-6) and second[1] == 0.0


def test_the_peak_of_a_2d_image_is_measured_as_a_disc_in_its_plane():
    heat = torch.zeros(1, 1, 40, 40, dtype=torch.half)    # a 2d configuration: one slice, 5 mm thick
    y, x = torch.meshgrid(*[torch.arange(40)] * 2, indexing="ij")
    heat[0, 0][(y - 20) ** 2 + (x - 20) ** 2 <= 6 ** 2] = 0.8   # 113 pixels of 0.5 x 0.5 mm
    radius, _ = peak_shape(heat, np.array([[0, 20, 20]]), (5.0, 0.5, 0.5))
    assert radius[0] == pytest.approx(np.sqrt(113 * 0.25 / np.pi), rel=1e-6)   # about 3 mm: the disc's radius
