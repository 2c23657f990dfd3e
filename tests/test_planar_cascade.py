"""2D images larger than one CPU patch (cephalograms of 2000^2 pixels are): the planner gives them a cascade, and
one nnLandmark_predict runs both stages on the PNG files."""
import json
import os

import numpy as np
import pytest

from nnlandmark.dataset_conversion.synthetic import write_planar_sources

pytestmark = pytest.mark.slow
DATASET, SPACING, COARSE_EPOCHS, FINE_EPOCHS = 994, 0.8, 8, 5


def test_a_large_radiograph_is_predicted_through_a_whole_image_stage_in_one_command(tmp_path, cli, set_epochs,
                                                                                    mean_shape_mre):
    env = {**os.environ, "nnUNet_raw": str(tmp_path / "raw"), "nnUNet_preprocessed": str(tmp_path / "pre"),
           "nnUNet_results": str(tmp_path / "results"), "nnUNet_n_proc_DA": "1"}
    images, landmarks = write_planar_sources(str(tmp_path / "sources"), n_cases=16, size=320, n_outline=4,
                                             n_inner=3, seed=5)
    cli("nnLandmark_convert", env, "-i", images, "-l", landmarks, "-d", DATASET, "-n", "Cephalograms",
        "--spacing", SPACING, SPACING, "--test-fraction", 0.25)
    planned = cli("nnLandmark_plan_and_preprocess", env, "-d", DATASET, "-device", "cpu")
    assert f"train nnLandmark_train {DATASET} 2d_whole FOLD then nnLandmark_train {DATASET} 2d FOLD" in planned
    plans_file = tmp_path / "pre" / "Dataset994_Cephalograms" / "nnLandmarkCPUPlans.json"
    set_epochs(plans_file, "2d_whole", COARSE_EPOCHS)
    set_epochs(plans_file, "2d", FINE_EPOCHS)
    for stage in ("2d_whole", "2d"):
        cli("nnLandmark_train", env, DATASET, stage, 0, "-device", "cpu")
    raw = tmp_path / "raw" / "Dataset994_Cephalograms"
    tests = sorted(p.name[:-len("_0000.nii.gz")] for p in (raw / "imagesTs").iterdir())
    out = tmp_path / "predictions"
    cli("nnLandmark_predict", env, "-i", *[os.path.join(images, f"{case}.png") for case in tests], "-o", out,
        "-d", DATASET, "-device", "cpu", "--spacing", SPACING, SPACING, "--disable_tqdm")

    results = tmp_path / "results" / "Dataset994_Cephalograms"
    coarse_model = next(results.glob("*__2d_whole"))
    radii = json.loads((coarse_model / "search_radius.json").read_text())
    fine_validation = next(results.glob("*_Fine__*__2d")) / "fold_0" / "validation"
    assert all("stage" in entry for file in fine_validation.glob("radiograph_*.json")
               for entry in json.loads(file.read_text())["landmarks"].values())   # validated as it is used
    truth = json.loads((raw / "all_landmarks_world.json").read_text())
    errors = []
    for case in tests:
        fine = json.loads((out / f"{case}.json").read_text())["landmarks"]
        coarse = json.loads((out / "2d_whole" / f"{case}.json").read_text())["landmarks"]
        for name, entry in fine.items():
            i, j, k = entry["voxel"]
            assert k == 0 and entry["stage"] in ("fine", "coarse")
            np.testing.assert_allclose(entry["world"], [i * SPACING, j * SPACING, 0], atol=1e-6)
            assert np.linalg.norm(np.subtract(entry["world"], coarse[name]["world"])) <= radii[name] + 1e-6
            errors.append(np.linalg.norm(np.subtract(entry["world"], truth[case][name])))
    floor = mean_shape_mre(truth, tests)
    assert np.mean(errors) < 0.5 * floor, (np.mean(errors), floor)    # 0.35 mm against 22.8 when written
