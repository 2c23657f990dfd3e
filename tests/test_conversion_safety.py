"""nnLandmark_convert never leaves a wrong dataset, half a dataset or a lost one: concurrent and killed runs,
reserved names, bad splits and manifests, broken links and unwritable places fail with one line."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from nnlandmark.commands import convert as convert_command
from nnlandmark.commands import evaluate as evaluate_command
from nnlandmark.dataset_conversion.convert import convert
from nnlandmark.errors import LandmarkError
from nnlandmark.planning import _ship_splits

BIN = Path(sys.executable).parent
POINTS = "name,i,j,k\na,3.2,4.1,2.5\nb,10.7,8.3,5.1\n"  # voxel indices inside a 16 x 15 x 9 image


def make_inputs(root, cases, size=(9, 15, 16), ending=".nii.gz", points=POINTS):
    """One random image per case (written once, copied) and a voxel CSV with landmarks a and b; returns root."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "landmarks").mkdir(exist_ok=True)
    image = sitk.GetImageFromArray(np.random.default_rng(0).normal(size=size).astype(np.float32))
    first = root / "images" / f"{cases[0]}{ending}"
    sitk.WriteImage(image, str(first))
    for case in cases:
        if case != cases[0]:
            shutil.copyfile(first, root / "images" / f"{case}{ending}")
        (root / "landmarks" / f"{case}.csv").write_text(points)
    return root


def folders(root):
    return ["-i", str(root / "images"), "-l", str(root / "landmarks")]


def start(env, *args):
    return subprocess.Popen([str(BIN / "nnLandmark_convert"), *map(str, args)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for_writing(raw, process, timeout=120):
    """Returns once the run's build folder holds its first image, i.e. while it writes."""
    deadline = time.monotonic() + timeout
    while not any(raw.glob(".Dataset*/dataset/imagesTr/*")):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the conversion never started writing"
        time.sleep(0.02)


def snapshot(folder):
    """{relative path: bytes} of every file under folder."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def error_line(stderr):
    """The line a terminal shows for the error (a progress bar's '\\r' redraws count as line starts)."""
    lines = [line for line in re.split(r"[\r\n]", stderr) if "error:" in line]
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.fixture
def env(nnunet_dirs):
    return {**os.environ, "nnUNet_raw": str(nnunet_dirs / "nnUNet_raw")}


SLOW = [f"slow{i:02d}" for i in range(64)]  # 64 cases of 64^3 voxels, recompressed: seconds of writing


def test_a_second_conversion_into_the_same_dataset_is_refused_while_the_first_writes(nnunet_dirs, env):
    raw = nnunet_dirs / "nnUNet_raw"
    slow = make_inputs(nnunet_dirs / "slow", SLOW, size=(64, 64, 64), ending=".nrrd")
    quick = make_inputs(nnunet_dirs / "quick", ["quick0", "quick1"])
    first = start(env, *folders(slow), "-d", "50", "-n", "Race", "--overwrite")
    wait_for_writing(raw, first)
    # the same dataset, and another name for the same ID, both while the first one writes
    others = [start(env, *folders(quick), "-d", "50", "-n", name, "--overwrite") for name in ("Race", "Other")]
    for other in others:
        out, err = other.communicate(timeout=300)
        assert other.returncode == 2, err
        line = error_line(err)
        assert line.startswith("error: another conversion into dataset 050 is running (lock ") and "wait" in line
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert sorted(os.listdir(raw)) == ["Dataset050_Race"]  # no lock file, no build folder left
    dataset = raw / "Dataset050_Race"
    assert sorted(p.name for p in (dataset / "imagesTr").iterdir()) == [f"{c}_0000.nii.gz" for c in SLOW]
    assert sorted(p.name for p in (dataset / "labelsTr").iterdir()) == [f"{c}.nii.gz" for c in SLOW]
    assert json.loads((dataset / "dataset.json").read_text())["numTraining"] == 64
    table = json.loads((dataset / "all_landmarks_voxel.json").read_text())
    assert table.pop("coordinate_system") == "voxel" and sorted(table) == SLOW


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_killed_overwrite_leaves_the_previous_dataset_and_nothing_else(nnunet_dirs, env, sig, capsys,
                                                                        sigint_reaches_children):
    raw = nnunet_dirs / "nnUNet_raw"
    old = make_inputs(nnunet_dirs / "old", ["old0", "old1"])
    slow = make_inputs(nnunet_dirs / "slow", SLOW, size=(64, 64, 64), ending=".nrrd")
    convert_command.main([*folders(old), "-d", "51", "-n", "Kill"])
    before = snapshot(raw)
    process = start(env, *folders(slow), "-d", "51", "-n", "Kill", "--overwrite")
    wait_for_writing(raw, process)
    process.send_signal(sig)
    out, err = process.communicate(timeout=120)
    assert process.returncode != 0, err
    if sig == signal.SIGTERM:
        assert "Traceback" not in err
    assert sorted(os.listdir(raw)) == ["Dataset051_Kill"]
    assert snapshot(raw) == before


def test_a_killed_runs_build_folder_is_removed_and_a_dataset_it_moved_aside_restored(nnunet_dirs, capsys):
    """What SIGKILL between the two renames of the swap leaves: the old dataset inside the build folder."""
    raw = nnunet_dirs / "nnUNet_raw"
    old = make_inputs(nnunet_dirs / "old", ["old0", "old1"])
    convert_command.main([*folders(old), "-d", "52", "-n", "Moved"])
    before = snapshot(raw / "Dataset052_Moved")
    build = raw / ".Dataset052_Moved.k1ll3d_"
    (build / "dataset" / "imagesTr").mkdir(parents=True)
    (raw / "Dataset052_Moved").rename(build / "previous")
    (raw / "Dataset052_Legacy.partial").mkdir()
    new = make_inputs(nnunet_dirs / "new", ["new0"])
    with pytest.raises(SystemExit):  # without --overwrite: the restored dataset stays
        convert_command.main([*folders(new), "-d", "52", "-n", "Moved"])
    err = capsys.readouterr().err
    assert f"removed {build}, left behind by a conversion that was killed" in err
    assert f"{raw / 'Dataset052_Legacy.partial'} is left over from an interrupted conversion: delete it" in err
    assert "Dataset052_Moved already exists; pass --overwrite" in error_line(err)
    assert sorted(os.listdir(raw)) == ["Dataset052_Legacy.partial", "Dataset052_Moved"]
    assert snapshot(raw / "Dataset052_Moved") == before


@pytest.mark.parametrize("name", ["X.partial", "X.old", "Y.PARTIAL"])
def test_reserved_dataset_names_are_refused(nnunet_dirs, fails_with, name):
    inputs = make_inputs(nnunet_dirs / "in", ["c0"])
    line = fails_with(convert_command.main, [*folders(inputs), "-d", "53", "-n", name])
    assert f"dataset name '{name}' is reserved" in line
    assert os.listdir(nnunet_dirs / "nnUNet_raw") == []


@pytest.mark.parametrize("landmark", ["ignore", "Ignore", "BACKGROUND"])
def test_nnunet_label_names_are_refused_as_landmarks(nnunet_dirs, fails_with, landmark):
    inputs = make_inputs(nnunet_dirs / "in", ["c0"], points=f"name,i,j,k\n{landmark},3,4,2\nb,10,8,5\n")
    line = fails_with(convert_command.main, [*folders(inputs), "-d", "54", "-n", "X"])
    assert f"a landmark may not be called '{landmark}'" in line and "rename it" in line
    assert os.listdir(nnunet_dirs / "nnUNet_raw") == []


def test_the_landmark_tables_key_is_refused_as_a_case_id(nnunet_dirs, fails_with):
    inputs = make_inputs(nnunet_dirs / "in", ["coordinate_system"])
    line = fails_with(convert_command.main, [*folders(inputs), "-d", "54", "-n", "X"])
    assert "case ID 'coordinate_system'" in line and "is reserved" in line and "coordinate_system.csv" in line
    assert os.listdir(nnunet_dirs / "nnUNet_raw") == []


def test_a_converted_voxel_table_is_refused_as_ground_truth_under_any_name(nnunet_dirs, fails_with, tmp_path,
                                                                          write_prediction):
    """Its declaration, not only its name, says it holds voxel indices (exact predictions would score centimetres)."""
    inputs = make_inputs(nnunet_dirs / "in", ["c0"])
    convert_command.main([*folders(inputs), "-d", "54", "-n", "X"])
    renamed = tmp_path / "truth.json"
    shutil.copy(nnunet_dirs / "nnUNet_raw" / "Dataset054_X" / "all_landmarks_voxel.json", renamed)
    write_prediction(tmp_path / "pred", "c0", {"a": [3.2, 4.1, 2.5], "b": [10.7, 8.3, 5.1]})
    line = fails_with(evaluate_command.main, ["-pred", str(tmp_path / "pred"), "-gt", str(renamed)])
    assert "truth.json holds voxel indices, not world coordinates" in line


@pytest.mark.parametrize("splits,message", [
    ([{"train": ["c0", "c1"], "val": ["c1", "c2"]}, {"train": ["c2", "c3"], "val": ["c0"]}],
     "splits fold 0 has case 'c1' in both 'train' and 'val'"),
    ([{"train": ["c0", "c1", "c2", "c3"], "val": []}], "splits fold 0 has an empty 'val' list"),
    ([{"train": ["c0", "c1"], "val": ["c2", "c3"]}, {"train": [], "val": ["c0"]}],
     "splits fold 1 has an empty 'train' list"),
    ([{"train": ["c0", "c0", "c1"], "val": ["c2", "c3"]}], "splits fold 0 lists case 'c0' twice in 'train'"),
    ([{"train": ["c0", "c1"], "val": ["c2", "c3", "c3"]}], "splits fold 0 lists case 'c3' twice in 'val'"),
    ([{"train": ["c0", "c1"], "val": ["c2"]}, {"train": [["c0"]], "val": ["c1"]}],
     "splits fold 1 must list case IDs as strings"),
])
def test_inconsistent_splits_are_refused_naming_fold_and_case(nnunet_dirs, fails_with, splits, message):
    inputs = make_inputs(nnunet_dirs / "in", ["c0", "c1", "c2", "c3"])
    (nnunet_dirs / "splits.json").write_text(json.dumps(splits))
    line = fails_with(convert_command.main, [*folders(inputs), "-d", "55", "-n", "X", "--splits",
                                             str(nnunet_dirs / "splits.json")])
    assert message in line
    assert os.listdir(nnunet_dirs / "nnUNet_raw") == []


def test_one_image_under_two_case_ids_is_refused_naming_both(nnunet_dirs, fails_with):
    inputs = make_inputs(nnunet_dirs / "in", ["c0", "c1"])
    manifest = nnunet_dirs / "manifest.csv"
    manifest.write_text("case,image,landmarks\nleft,in/images/c0.nii.gz,in/landmarks/c0.csv\n"
                        "right,in/images/../images/c0.nii.gz,in/landmarks/c1.csv\n")
    line = fails_with(convert_command.main, ["--manifest", str(manifest), "-d", "56", "-n", "X"])
    assert "belongs to two cases, 'left' and 'right'" in line and "c0.nii.gz" in line
    (inputs / "images" / "c1.nii.gz").unlink()
    (inputs / "images" / "c1.nii.gz").symlink_to(inputs / "images" / "c0.nii.gz")
    line = fails_with(convert_command.main, [*folders(inputs), "-d", "56", "-n", "X"])
    assert "belongs to two cases, 'c0' and 'c1'" in line


def test_preprocessed_split_of_an_overwritten_dataset_is_removed(nnunet_dirs, capsys):
    raw = nnunet_dirs / "nnUNet_raw"
    pre = nnunet_dirs / "nnUNet_preprocessed" / "Dataset057_X"
    pre.mkdir()
    inputs = make_inputs(nnunet_dirs / "in", ["c0", "c1", "c2"])
    convert_command.main([*folders(inputs), "-d", "57", "-n", "X"])
    stale = [{"train": ["c0", "c1", "c9"], "val": ["c2"]}, {"train": ["c2", "c9"], "val": ["c0", "c1"]}]
    (pre / "splits_final.json").write_text(json.dumps(stale))
    _ship_splits(str(raw / "Dataset057_X"), str(pre), ".nii.gz")
    assert not (pre / "splits_final.json").exists()
    assert "names 1 case(s) that" in capsys.readouterr().out
    kept = [{"train": ["c0", "c1"], "val": ["c2"]}, {"train": ["c2"], "val": ["c0", "c1"]}]
    (pre / "splits_final.json").write_text(json.dumps(kept))
    _ship_splits(str(raw / "Dataset057_X"), str(pre), ".nii.gz")
    assert json.loads((pre / "splits_final.json").read_text()) == kept and capsys.readouterr().out == ""
    # a split shipped with the dataset replaces the stale one
    convert_command.main([*folders(inputs), "-d", "57", "-n", "X", "--folds", "3", "--overwrite"])
    (pre / "splits_final.json").write_text(json.dumps(stale))
    _ship_splits(str(raw / "Dataset057_X"), str(pre), ".nii.gz")
    assert (json.loads((pre / "splits_final.json").read_text())
            == json.loads((raw / "Dataset057_X" / "splits_final.json").read_text()))
    # a split that leaves out a case the dataset now has is kept, with a warning
    (pre / "splits_final.json").write_text(json.dumps([{"train": ["c0"], "val": ["c1"]}]))
    (raw / "Dataset057_X" / "splits_final.json").unlink()
    _ship_splits(str(raw / "Dataset057_X"), str(pre), ".nii.gz")
    assert "leaves out 1 training case(s)" in capsys.readouterr().out and (pre / "splits_final.json").exists()
    (pre / "splits_final.json").write_text(json.dumps({"train": ["c0"], "val": ["c1"]}))
    with pytest.raises(LandmarkError, match="splits_final.json is not an nnU-Net split"):
        _ship_splits(str(raw / "Dataset057_X"), str(pre), ".nii.gz")


def test_names_too_long_for_file_names_are_refused(nnunet_dirs, fails_with):
    long_case = "c" * 300
    inputs = make_inputs(nnunet_dirs / "in", [long_case[:200]])
    manifest = nnunet_dirs / "manifest.csv"
    manifest.write_text(f"case,image,landmarks\n{long_case},in/images/{long_case[:200]}.nii.gz,"
                        f"in/landmarks/{long_case[:200]}.csv\n")
    line = fails_with(convert_command.main, ["--manifest", str(manifest), "-d", "58", "-n", "X"])
    assert "case ID 'cccc" in line and "has 300 characters; at most 200" in line
    line = fails_with(convert_command.main, [*folders(inputs), "-d", "58", "-n", "n" * 260])
    assert "dataset name 'nnnn" in line and "has 260 characters" in line
    assert os.listdir(nnunet_dirs / "nnUNet_raw") == []


def test_negative_seed_is_refused(nnunet_dirs, fails_with):
    inputs = make_inputs(nnunet_dirs / "in", ["c0", "c1", "c2"])
    for option in (["--folds", "2"], ["--test-fraction", "0.3"]):
        line = fails_with(convert_command.main, [*folders(inputs), "-d", "59", "-n", "X", "--seed", "-1", *option])
        assert "--seed -1 must be 0 or more" in line


def test_nnunet_raw_that_is_a_file_is_named(nnunet_dirs, monkeypatch, fails_with):
    inputs = make_inputs(nnunet_dirs / "in", ["c0"])
    (nnunet_dirs / "raw_file").write_text("")
    monkeypatch.setenv("nnUNet_raw", str(nnunet_dirs / "raw_file"))
    line = fails_with(convert_command.main, [*folders(inputs), "-d", "60", "-n", "X"])
    assert "nnUNet_raw" in line and str(nnunet_dirs / "raw_file") in line and "not a folder" in line
    with pytest.raises(LandmarkError, match=f"nnUNet_raw {nnunet_dirs / 'raw_file'} is a file, not a folder"):
        convert(str(nnunet_dirs / "raw_file"), 60, "X", str(inputs / "images"), str(inputs / "landmarks"))


def test_read_only_nnunet_raw_is_named(nnunet_dirs, monkeypatch, unwritable_folder, fails_with):
    inputs = make_inputs(nnunet_dirs / "in", ["c0"])
    monkeypatch.setenv("nnUNet_raw", str(unwritable_folder))
    line = fails_with(convert_command.main, [*folders(inputs), "-d", "61", "-n", "X"])
    assert f"nnUNet_raw {unwritable_folder} is not writable" in line


def test_a_full_disk_while_writing_is_one_line_and_leaves_nothing(nnunet_dirs, env):
    """A file size limit (RLIMIT_FSIZE, SIGXFSZ ignored) makes writes fail as on a full disk."""
    inputs = make_inputs(nnunet_dirs / "in", ["c0", "c1"], size=(64, 64, 64))  # ~1 MB .nii.gz, copied as is
    limit = ("import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
             "resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000)); "
             "from nnlandmark.commands.convert import main; sys.exit(main(sys.argv[1:]))")
    result = subprocess.run([sys.executable, "-c", limit, *folders(inputs), "-d", "62", "-n", "Full"], env=env,
                            capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    line = error_line(result.stderr)
    assert line.startswith("error: cannot write ") and "c0_0000.nii.gz" in line and "File too large" in line
    assert os.listdir(nnunet_dirs / "nnUNet_raw") == []


@pytest.mark.parametrize("content,message", [
    ("Case, Image ,LANDMARKS\nc0,in/images/c0.nii.gz,in/landmarks/c0.csv\n", None),
    ("case;image;landmarks\nc0;in/images/c0.nii.gz;in/landmarks/c0.csv\n", "separates its columns with ';'"),
    ("name,file\nc0,in/images/c0.nii.gz\n", "has the columns name, file; it needs image (or images), landmarks"),
    ("case,image,landmarks\nc0,in/images,in/landmarks/c0.csv\n", "images is a folder, not an image file"),
    ("case,image,landmarks\nc0,in/images/c0.nii.gz,in/landmarks\n", "landmarks is a folder, not a landmark file"),
])
def test_manifest_mistakes_are_named(nnunet_dirs, fails_with, content, message):
    make_inputs(nnunet_dirs / "in", ["c0"])
    manifest = nnunet_dirs / "manifest.csv"
    manifest.write_text(content)
    argv = ["--manifest", str(manifest), "-d", "63", "-n", "X"]
    if message is None:
        convert_command.main(argv)
        assert (nnunet_dirs / "nnUNet_raw" / "Dataset063_X" / "labelsTr" / "c0.nii.gz").is_file()
    else:
        line = fails_with(convert_command.main, argv)
        assert f"manifest {manifest}" in line and message in line


def test_json_manifest_that_is_an_object_is_named(nnunet_dirs, fails_with):
    make_inputs(nnunet_dirs / "in", ["c0"])
    manifest = nnunet_dirs / "manifest.json"
    manifest.write_text(json.dumps({"c0": {"image": "in/images/c0.nii.gz", "landmarks": "in/landmarks/c0.csv"}}))
    line = fails_with(convert_command.main, ["--manifest", str(manifest), "-d", "64", "-n", "X"])
    assert f"manifest {manifest} must be a JSON list of {{case, image, landmarks}} objects, not a dict" in line
    manifest.write_text(json.dumps([{"case": "c0", "image": 7, "landmarks": "in/landmarks/c0.csv"}]))
    line = fails_with(convert_command.main, ["--manifest", str(manifest), "-d", "64", "-n", "X"])
    assert f"manifest {manifest} entry 1: 'image' must be a path, or a list of paths" in line


def test_broken_image_link_is_named_not_reported_as_a_missing_partner(nnunet_dirs, fails_with):
    inputs = make_inputs(nnunet_dirs / "in", ["c0", "c1"])
    (inputs / "images" / "c1.nii.gz").unlink()
    (inputs / "images" / "c1.nii.gz").symlink_to(nnunet_dirs / "gone.nii.gz")
    line = fails_with(convert_command.main, [*folders(inputs), "-d", "65", "-n", "X"])
    assert (f"image {inputs / 'images' / 'c1.nii.gz'} is a broken symbolic link (target "
            f"{nnunet_dirs / 'gone.nii.gz'} missing)") in line


def test_an_error_while_writing_starts_its_own_line_after_the_progress_bar(nnunet_dirs, capfd):
    inputs = make_inputs(nnunet_dirs / "in", ["c0", "c1", "c2"], ending=".nrrd")
    nan = sitk.GetImageFromArray(np.full((9, 15, 16), np.nan, np.float32))
    sitk.WriteImage(nan, str(inputs / "images" / "c2.nrrd"))  # found only when its voxels are read, while writing
    with pytest.raises(SystemExit):
        convert_command.main([*folders(inputs), "-d", "66", "-n", "X"])
    err = capfd.readouterr().err
    assert "writing images and label cubes" in err
    assert error_line(err).startswith("error: image ") and "c2.nrrd contains NaN" in err
    assert os.listdir(nnunet_dirs / "nnUNet_raw") == []
