"""Pictures: box plot and SDR curve exist and are not blank; QC overlays put the markers on the right pixels."""
import json

import numpy as np
import pytest
import SimpleITK as sitk
from matplotlib.image import imread

from nnlandmark.commands.evaluate import main

RED, GREEN = (1.0, 0.0, 0.0), (0.0, 1.0, 0.0)


@pytest.fixture
def dataset(tmp_path, write_prediction):
    """Images 20 x 10 x 20 voxels (i, j, k), spacing (1, 2, 1) mm, origin (5, -3, 7): every slice is 20 x 20 mm.
    Case w: ground truth at index (5, 3, 12) = world (10, 3, 19), prediction at (14, 7, 12) = world (19, 11, 19).
    Case g: perfect prediction, so w is the worst case."""
    root = tmp_path / "Dataset009_QC"
    (root / "imagesTr").mkdir(parents=True)
    (root / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "L": 1}, "file_ending": ".nii.gz"}))
    k, j, i = np.meshgrid(np.arange(20), np.arange(10), np.arange(20), indexing="ij")
    image = sitk.GetImageFromArray((i + 3 * j + 2 * k).astype(np.float32))   # numpy (z, y, x)
    image.SetSpacing((1.0, 2.0, 1.0))
    image.SetOrigin((5.0, -3.0, 7.0))
    for case in ("w", "g"):
        sitk.WriteImage(image, str(root / "imagesTr" / f"{case}_0000.nii.gz"))
    (root / "all_landmarks_world.json").write_text(json.dumps({"w": {"L": [10, 3, 19]}, "g": {"L": [10, 3, 19]}}))
    pred = tmp_path / "pred"
    write_prediction(pred, "w", {"L": [19, 11, 19]})
    write_prediction(pred, "g", {"L": [10, 3, 19]})
    return root, pred


def colour_centroid(png, colour, centre, radius):
    """Mean (x, y) of the pixels of one pure colour within a square window, or None if there are none."""
    x0, y0 = centre
    window = png[y0 - radius:y0 + radius + 1, x0 - radius:x0 + radius + 1, :3]
    hit = np.all(np.abs(window - np.array(colour)) < 0.25, axis=-1)
    if not hit.any():
        return None
    ys, xs = np.nonzero(hit)
    return x0 - radius + xs.mean(), y0 - radius + ys.mean()


def test_summary_plots_exist_and_are_not_blank(dataset, tmp_path):
    root, pred = dataset
    assert main(["-pred", str(pred), "-gt", str(root), "-o", str(tmp_path / "out")]) == 0
    for name in ("errors_boxplot.png", "sdr_curve.png"):
        png = imread(tmp_path / "out" / name)
        assert png.shape[0] > 100 and png.shape[1] > 100
        assert png[..., :3].std() > 0.01 and len(np.unique(png[..., :3].reshape(-1, 3), axis=0)) > 10
    assert not (tmp_path / "out" / "qc").exists()


def test_qc_marks_prediction_and_ground_truth_at_the_right_pixels(dataset, tmp_path, capsys):
    root, pred = dataset
    assert main(["-pred", str(pred), "-gt", str(root), "-o", str(tmp_path / "out"), "--qc", "1"]) == 0
    assert "qc/ (1 case(s))" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "out" / "qc").iterdir()) == ["w.png"]
    png = imread(tmp_path / "out" / "qc" / "w.png")
    # One landmark row: 24 px header + three 200 px panels; 10 px per mm in every panel here.
    assert png.shape[:2] == (224, 600)
    # Pixel centres, by hand: axial x = (i + .5) * 10, y = 24 + (j + .5) * 20; coronal x = 200 + (i + .5) * 10,
    # y = 24 + (19.5 - k) * 10; sagittal x = 400 + (j + .5) * 20, y = 24 + (19.5 - k) * 10.
    expected_pred = [(145, 174), (345, 99), (550, 99)]
    expected_gt = [(55, 94), (255, 99), (470, 99)]
    for (px, py), (gx, gy) in zip(expected_pred, expected_gt):
        red = colour_centroid(png, RED, (px, py), 8)
        green = colour_centroid(png, GREEN, (gx, gy), 11)
        assert red is not None and abs(red[0] - px) <= 1.5 and abs(red[1] - py) <= 1.5
        assert green is not None and abs(green[0] - gx) <= 1.5 and abs(green[1] - gy) <= 1.5
        assert colour_centroid(png, RED, (gx, gy), 3) is None      # no red where only the ground truth is
        assert colour_centroid(png, GREEN, (px, py), 3) is None
    # The image itself is drawn: grey values vary across the axial panel.
    assert png[30:210, 10:190, 0].std() > 0.05


def test_qc_from_images_folder_and_its_errors(dataset, tmp_path, capsys):
    root, pred = dataset
    gt = root / "all_landmarks_world.json"
    assert main(["-pred", str(pred), "-gt", str(gt), "-images", str(root / "imagesTr"),
                 "-o", str(tmp_path / "o"), "--qc", "5"]) == 0
    assert sorted(p.name for p in (tmp_path / "o" / "qc").iterdir()) == ["g.png", "w.png"]
    with pytest.raises(SystemExit) as exc:
        main(["-pred", str(pred), "-gt", str(gt), "--qc", "1"])
    assert exc.value.code == 2 and "-images" in capsys.readouterr().err
    (root / "imagesTr" / "w_0000.nii.gz").unlink()
    with pytest.raises(SystemExit):
        main(["-pred", str(pred), "-gt", str(root), "--qc", "1"])
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "w_0000.nii.gz" in err


def test_prediction_only_qc_marks_the_prediction(dataset, tmp_path):
    from nnlandmark.evaluation.qc import qc_for_predictions
    root, pred = dataset
    written = qc_for_predictions(pred, root / "imagesTr", ".nii.gz", cases=["w"])
    assert [p.name for p in written] == ["w.png"] and not (pred / "qc" / "g.png").exists()
    png = imread(pred / "qc" / "w.png")
    assert png.shape[:2] == (224, 600)
    # Slices now pass through the prediction (14, 7, 12): axial x = 14.5 * 10, y = 24 + 7.5 * 20, and so on.
    for px, py in [(145, 174), (345, 99), (550, 99)]:
        red = colour_centroid(png, RED, (px, py), 8)
        assert red is not None and abs(red[0] - px) <= 1.5 and abs(red[1] - py) <= 1.5
    assert not np.any(np.all(np.abs(png[..., :3] - np.array(GREEN)) < 0.25, axis=-1))


def test_prediction_qc_draws_the_radius_where_its_ball_meets_each_slice(dataset, tmp_path):
    from nnlandmark.evaluation.qc import qc_for_predictions
    root, pred = dataset
    case = json.loads((pred / "w.json").read_text())
    case["radius_coverage"] = 0.9
    case["landmarks"]["L"].update(expected_error_mm=2.0, radius_mm=5.0)
    (pred / "w.json").write_text(json.dumps(case))
    png = imread(qc_for_predictions(pred, root / "imagesTr", ".nii.gz", cases=["w"])[0])
    red = np.all(np.abs(png[..., :3] - np.array(RED)) < 0.25, axis=-1)
    ys, xs = np.nonzero(red)
    # slices through the prediction: a 5 mm circle is 50 px at 10 px per mm in every panel, around the red cross
    for px, py in [(145, 174), (345, 99), (550, 99)]:
        near = (np.abs(xs - px) < 100) & (np.abs(ys - py) < 100)
        distance = np.hypot(xs[near] - px, ys[near] - py)
        assert np.sum(np.abs(distance - 50) < 4) > 80           # the dashed circle
        assert np.sum((distance > 12) & (distance < 44)) == 0   # nothing between the cross and the circle
