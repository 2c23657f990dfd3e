"""A corpus of inputs that real users produce by mistake, run through every command: each must end in one
``error:`` line that names the culprit (file or option), exit code 2, no traceback, and no dataset or result
written. ``pytest tests/test_bad_input_corpus.py -rP`` shows each input's message.
"""
import gzip
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from nnlandmark.commands import calibrate, convert, demo, evaluate, plan_and_preprocess, predict, train

COMMANDS = {"convert": convert, "plan": plan_and_preprocess, "train": train, "predict": predict,
            "evaluate": evaluate, "calibrate": calibrate, "demo": demo}
CORPUS = []       # (name, command, build); build(tmp) -> (argv, text the error line must contain)
MODEL_CORPUS = []  # the same, for inputs that need a trained model: build(tmp, model_env) -> (argv, text)
CSV = "name,x,y,z\na,3,3,3\nb,7,7,7\n"


def bad(command, corpus=CORPUS):
    def register(build):
        corpus.append(pytest.param(command, build, id=build.__name__))
        return build
    return register


# ---- fabrication ------------------------------------------------------------------------------------------------

def volume(path, size=(12, 12, 12), spacing=(1.0, 1.0, 1.0)):
    path.parent.mkdir(parents=True, exist_ok=True)
    image = sitk.Image(list(size), sitk.sitkFloat32)
    image.SetSpacing(spacing)
    sitk.WriteImage(image, str(path))
    return path


def mha(path, spacing="1 1 1", matrix="1 0 0 0 1 0 0 0 1", size=(12, 12, 12)):
    """A MetaImage written by hand, so that its header can say what SimpleITK would never write."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = (f"ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\n"
              f"TransformMatrix = {matrix}\nOffset = 0 0 0\nElementSpacing = {spacing}\n"
              f"DimSize = {' '.join(map(str, size))}\nElementType = MET_FLOAT\nElementDataFile = LOCAL\n")
    path.write_bytes(header.encode() + np.zeros(size, np.float32).tobytes())
    return path


def convert_inputs(tmp, landmarks="c1.csv", text=CSV, image=None):
    """images/c1.nii.gz + landmarks/<landmarks>; ``image(path_stem)`` may write another image instead."""
    (tmp / "landmarks").mkdir(parents=True, exist_ok=True)
    if image is None:
        volume(tmp / "images" / "c1.nii.gz")
    else:
        (tmp / "images").mkdir(parents=True, exist_ok=True)
        image(tmp / "images")
    (tmp / "landmarks" / landmarks).write_text(text)
    return ["-i", tmp / "images", "-l", tmp / "landmarks", "-d", "501", "-n", "Bad", "--coordinate-system", "lps"]


def raw_dataset(tmp, spoil_json=None):
    """A valid converted Dataset502_Raw in $nnUNet_raw; ``spoil_json(dataset_json)`` edits its dataset.json."""
    from nnlandmark.dataset_conversion.convert import convert as convert_api
    args = convert_inputs(tmp)
    folder = Path(convert_api(os.environ["nnUNet_raw"], 502, "Raw", str(args[1]), str(args[3]),
                              coordinate_system="lps"))
    if spoil_json is not None:
        path = folder / "dataset.json"
        content = json.loads(path.read_text())
        spoiled = spoil_json(content)
        path.write_text(spoiled if isinstance(spoiled, str) else json.dumps(content))
    return folder


def prediction_folder(tmp, landmarks, name="pred"):
    folder = tmp / name
    folder.mkdir()
    (folder / "c1.json").write_text(json.dumps({"case": "c1", "coordinate_system": "LPS", "landmarks": landmarks}))
    return folder


def world_gt(tmp):
    path = tmp / "gt.json"
    path.write_text(json.dumps({"c1": {"a": [3.0, 3.0, 3.0], "b": [7.0, 7.0, 7.0]}}))
    return path


def good_point(xyz=(3.0, 3.0, 3.0), **extra):
    return {"label": 1, "voxel": list(xyz), "world": list(xyz), "likelihood": 0.9, "present": True, **extra}


def fold_validation(results, folds):
    """A model folder whose fold_K/validation holds the given {case: likelihood of 'a'} predictions."""
    model = results / "Dataset502_Raw" / "nnLandmarkTrainer__nnUNetPlans__3d_fullres"
    model.mkdir(parents=True)
    (model / "dataset.json").write_text((Path(os.environ["nnUNet_raw"]) / "Dataset502_Raw" / "dataset.json").read_text())
    for fold, cases in folds.items():
        folder = model / f"fold_{fold}" / "validation"
        folder.mkdir(parents=True)
        for case, likelihood in cases.items():
            (folder / f"{case}.json").write_text(json.dumps(
                {"case": case, "coordinate_system": "LPS",
                 "landmarks": {"a": good_point(likelihood=likelihood), "b": good_point((7, 7, 7))}}))
    return model


# ---- nnLandmark_convert -----------------------------------------------------------------------------------------

@bad("convert")
def decimal_comma_csv(tmp):
    return convert_inputs(tmp, text='name,x,y,z\na,"3,5","3,0","3,0"\nb,7,7,7\n'), "c1.csv"


@bad("convert")
def json_of_unknown_shape(tmp):
    return convert_inputs(tmp, "c1.json", json.dumps({"a": {"pos": "3 3 3"}, "b": [7, 7, 7]})), "c1.json"


@bad("convert")
def json_with_two_coordinates(tmp):
    return convert_inputs(tmp, "c1.json", json.dumps({"a": [3, 3], "b": [7, 7, 7]})), "c1.json"


@bad("convert")
def markups_curve_only(tmp):
    text = json.dumps({"markups": [{"type": "Curve", "name": "C", "coordinateSystem": "LPS",
                                    "controlPoints": [{"label": "a", "position": [3, 3, 3]},
                                                      {"label": "b", "position": [7, 7, 7]}]}]})
    return convert_inputs(tmp, "c1.mrk.json", text), "c1.mrk.json"


@bad("convert")
def markups_truncated(tmp):
    return convert_inputs(tmp, "c1.mrk.json", '{"markups": [{"type": "Fiducial", "controlPo'), "c1.mrk.json"


@bad("convert")
def fcsv_with_three_fields(tmp):
    return convert_inputs(tmp, "c1.fcsv", "# Markups fiducial file version = 4.11\n# CoordinateSystem = LPS\n"
                                          "1,3,3\n"), "c1.fcsv"


@bad("convert")
def csv_with_text_coordinate(tmp):
    return convert_inputs(tmp, text="name,x,y,z\na,three,3,3\nb,7,7,7\n"), "c1.csv"


@bad("convert")
def csv_with_nan_coordinate(tmp):
    return convert_inputs(tmp, text="name,x,y,z\na,nan,3,3\nb,7,7,7\n"), "c1.csv"


@bad("convert")
def empty_landmark_file(tmp):
    return convert_inputs(tmp, text=""), "c1.csv"


@bad("convert")
def binary_landmark_file(tmp):
    args = convert_inputs(tmp)
    (tmp / "landmarks" / "c1.csv").write_bytes(bytes(range(256)) * 4)
    return args, "c1.csv"


@bad("convert")
def duplicate_landmark_name(tmp):
    return convert_inputs(tmp, text="name,x,y,z\na,3,3,3\na,7,7,7\n"), "c1.csv"


@bad("convert")
def landmark_called_ignore(tmp):
    return convert_inputs(tmp, text="name,x,y,z\nignore,3,3,3\nb,7,7,7\n"), "ignore"


@bad("convert")
def landmark_called_background(tmp):
    return convert_inputs(tmp, text="name,x,y,z\nBackground,3,3,3\nb,7,7,7\n"), "ackground"


@bad("convert")
def landmark_outside_the_image(tmp):
    return convert_inputs(tmp, text="name,x,y,z\na,3,3,3\nb,70,7,7\n"), "c1.csv"


@bad("convert")
def ras_file_read_as_lps(tmp):
    args = convert_inputs(tmp, text="name,x,y,z\na,-3,-3,3\nb,-7,-7,7\n")
    return args, "RAS"


@bad("convert")
def unknown_coordinate_system_line(tmp):
    args = convert_inputs(tmp, text="# coordinate_system = XYZ\nname,x,y,z\na,3,3,3\nb,7,7,7\n")
    return args[:-2], "c1.csv"


@bad("convert")
def unpaired_landmark_file(tmp):
    args = convert_inputs(tmp)
    (tmp / "landmarks" / "c2.csv").write_text(CSV)
    return args, "c2.csv"


@bad("convert")
def dangling_image_symlink(tmp):
    args = convert_inputs(tmp)
    (tmp / "landmarks" / "c2.csv").write_text(CSV)
    (tmp / "images" / "c2.nii.gz").symlink_to(tmp / "nowhere.nii.gz")
    return args, "c2.nii.gz"


@bad("convert")
def image_not_an_image(tmp):
    return convert_inputs(tmp, image=lambda d: (d / "c1.nii.gz").write_bytes(b"not an image")), "c1.nii.gz"


@bad("convert")
def image_truncated_gzip(tmp):
    def write(folder):
        volume(folder / "full.nii.gz", size=(40, 40, 40))
        data = (folder / "full.nii.gz").read_bytes()
        (folder / "full.nii.gz").unlink()
        raw = gzip.decompress(data)
        (folder / "c1.nii.gz").write_bytes(gzip.compress(raw)[:len(gzip.compress(raw)) // 2])
    return convert_inputs(tmp, image=write), "c1.nii.gz"


@bad("convert")
def image_nifti_cut_short(tmp):
    def write(folder):
        volume(folder / "c1.nii")
        data = (folder / "c1.nii").read_bytes()
        (folder / "c1.nii").write_bytes(data[:len(data) // 2])
    return convert_inputs(tmp, image=write), "c1.nii"


@bad("convert")
def mhd_without_its_raw(tmp):
    def write(folder):
        volume(folder / "c1.mhd")
        (folder / "c1.raw").unlink()
    return convert_inputs(tmp, image=write), "c1"


@bad("convert")
def mhd_with_truncated_raw(tmp):
    def write(folder):
        volume(folder / "c1.mhd")
        raw = folder / "c1.raw"
        raw.write_bytes(raw.read_bytes()[:100])
    return convert_inputs(tmp, image=write), "c1"


@bad("convert")
def image_with_zero_spacing(tmp):
    return convert_inputs(tmp, image=lambda d: mha(d / "c1.mha", spacing="1 0 1")), "c1.mha"


@bad("convert")
def image_with_negative_spacing(tmp):
    return convert_inputs(tmp, image=lambda d: mha(d / "c1.mha", spacing="1 -1 1")), "c1.mha"


@bad("convert")
def image_with_sheared_direction(tmp):
    return convert_inputs(tmp, image=lambda d: mha(d / "c1.mha", matrix="1 0 0 0 1 0 0 0.3 1")), "c1.mha"


@bad("convert")
def image_with_scaled_direction(tmp):
    return convert_inputs(tmp, image=lambda d: mha(d / "c1.mha", matrix="2 0 0 0 2 0 0 0 2")), "c1.mha"


@bad("convert")
def image_2d(tmp):
    return convert_inputs(tmp, image=lambda d: sitk.WriteImage(sitk.Image(12, 12, sitk.sitkFloat32),
                                                               str(d / "c1.nii.gz"))), "c1.nii.gz"


@bad("convert")
def image_4d(tmp):
    return convert_inputs(tmp, image=lambda d: sitk.WriteImage(sitk.Image([12, 12, 12, 2], sitk.sitkFloat32),
                                                               str(d / "c1.nii.gz"))), "c1.nii.gz"


@bad("convert")
def image_with_nan(tmp):
    def write(folder):
        image = sitk.GetImageFromArray(np.full((12, 12, 12), np.nan, np.float32))
        sitk.WriteImage(image, str(folder / "c1.mha"))
    return convert_inputs(tmp, image=write), "c1.mha"


@bad("convert")
def channels_on_different_grids(tmp):
    def write(folder):
        volume(folder / "c1_0000.nii.gz")
        volume(folder / "c1_0001.nii.gz", spacing=(2.0, 1.0, 1.0))
    return convert_inputs(tmp, image=write), "c1_0001.nii.gz"


@bad("convert")
def reserved_dataset_name(tmp):
    args = convert_inputs(tmp)
    args[args.index("-n") + 1] = "Bad.partial"
    return args, "Bad.partial"


@bad("convert")
def case_id_too_long(tmp):
    convert_inputs(tmp)
    name = "c" * 300
    (tmp / "landmarks" / "c1.csv").rename(tmp / "landmarks" / "x.csv")
    manifest = tmp / "manifest.csv"
    manifest.write_text(f"case,image,landmarks\n{name},images/c1.nii.gz,landmarks/x.csv\n")
    return ["--manifest", manifest, "-d", "501", "-n", "Bad", "--coordinate-system", "lps"], "ccccc"


@bad("convert")
def negative_seed(tmp):
    return convert_inputs(tmp) + ["--test-fraction", "0.5", "--seed", "-1"], "--seed"


@bad("convert")
def fraction_above_one(tmp):
    return convert_inputs(tmp) + ["--test-fraction", "1.5"], "--test-fraction"


@bad("convert")
def too_many_folds(tmp):
    return convert_inputs(tmp) + ["--folds", "5"], "--folds"


@bad("convert")
def may_be_absent_unknown(tmp):
    return convert_inputs(tmp) + ["--may-be-absent", "zz"], "zz"


@bad("convert")
def splits_case_in_train_and_val(tmp):
    args = convert_inputs(tmp)
    volume(tmp / "images" / "c2.nii.gz")
    (tmp / "landmarks" / "c2.csv").write_text(CSV)
    (tmp / "splits.json").write_text(json.dumps([{"train": ["c1", "c2"], "val": ["c2"]}]))
    return args + ["--splits", tmp / "splits.json"], "c2"


@bad("convert")
def splits_with_empty_val(tmp):
    args = convert_inputs(tmp)
    volume(tmp / "images" / "c2.nii.gz")
    (tmp / "landmarks" / "c2.csv").write_text(CSV)
    (tmp / "splits.json").write_text(json.dumps([{"train": ["c1", "c2"], "val": []}]))
    return args + ["--splits", tmp / "splits.json"], "fold 0"


@bad("convert")
def manifest_is_a_json_object(tmp):
    convert_inputs(tmp)
    (tmp / "m.json").write_text(json.dumps({"case": "c1", "image": "images/c1.nii.gz", "landmarks": "landmarks/c1.csv"}))
    return ["--manifest", tmp / "m.json", "-d", "501", "-n", "Bad", "--coordinate-system", "lps"], "m.json"


@bad("convert")
def manifest_entry_is_a_folder(tmp):
    convert_inputs(tmp)
    (tmp / "m.csv").write_text("case,image,landmarks\nc1,images,landmarks/c1.csv\n")
    return ["--manifest", tmp / "m.csv", "-d", "501", "-n", "Bad", "--coordinate-system", "lps"], "images"


@bad("convert")
def manifest_separated_by_semicolons(tmp):
    convert_inputs(tmp)
    (tmp / "m.csv").write_text("case;image;landmarks\nc1;images/c1.nii.gz;landmarks/c1.csv\n")
    return ["--manifest", tmp / "m.csv", "-d", "501", "-n", "Bad", "--coordinate-system", "lps"], "m.csv"


@bad("convert")
def one_image_under_two_case_ids(tmp):
    convert_inputs(tmp)
    (tmp / "landmarks" / "c2.csv").write_text(CSV)
    (tmp / "m.csv").write_text("case,image,landmarks\nc1,images/c1.nii.gz,landmarks/c1.csv\n"
                               "c2,images/c1.nii.gz,landmarks/c2.csv\n")
    return ["--manifest", tmp / "m.csv", "-d", "501", "-n", "Bad", "--coordinate-system", "lps"], "c1.nii.gz"


@bad("convert")
def nnunet_raw_is_a_file(tmp):
    raw = Path(os.environ["nnUNet_raw"])
    raw.rmdir()
    raw.write_text("")
    return convert_inputs(tmp), "nnUNet_raw"


@bad("convert")
def dataset_exists_without_overwrite(tmp):
    args = convert_inputs(tmp)
    (Path(os.environ["nnUNet_raw"]) / "Dataset501_Bad").mkdir()
    return args, "--overwrite"


@bad("convert")
def images_folder_missing(tmp):
    args = convert_inputs(tmp)
    args[1] = tmp / "no_such_folder"
    return args, "no_such_folder"


# ---- nnLandmark_plan_and_preprocess -----------------------------------------------------------------------------

@bad("plan")
def dataset_json_without_labels(tmp):
    raw_dataset(tmp, lambda d: d.__delitem__("labels"))
    return ["-d", "502"], "labels"


@bad("plan")
def dataset_json_without_file_ending(tmp):
    raw_dataset(tmp, lambda d: d.__delitem__("file_ending"))
    return ["-d", "502"], "file_ending"


@bad("plan")
def dataset_json_syntax_error(tmp):
    raw_dataset(tmp, lambda d: '{"labels": {"background": 0,')
    return ["-d", "502"], "dataset.json"


@bad("plan")
def dataset_json_region_label(tmp):
    raw_dataset(tmp, lambda d: d["labels"].update(both=[1, 2]))
    return ["-d", "502"], "both"


@bad("plan")
def dataset_json_more_channels_than_files(tmp):
    raw_dataset(tmp, lambda d: d["channel_names"].update({"1": "T2"}))
    return ["-d", "502"], "channel"


@bad("plan")
def unknown_dataset(tmp):
    return ["-d", "777"], "777"


@bad("plan")
def zero_processes(tmp):
    raw_dataset(tmp)
    return ["-d", "502", "-np", "0"], "-np"


@bad("plan")
def misspelled_configuration(tmp):
    raw_dataset(tmp)
    return ["-d", "502", "-c", "3d_fulres", "-np", "1"], "3d_fulres"


# ---- nnLandmark_train -------------------------------------------------------------------------------------------

@bad("train")
def unknown_trainer(tmp):
    return ["502", "3d_fullres", "0", "-tr", "nnLandmarkTrainerX"], "nnLandmarkTrainerX"


@bad("train")
def train_without_plans(tmp):
    raw_dataset(tmp)
    return ["502", "3d_fullres", "0", "-device", "cpu"], "nnUNetPlans"


@bad("train")
def train_on_missing_cuda(tmp):
    raw_dataset(tmp)
    return ["502", "3d_fullres", "0", "-device", "cuda"], "cuda"


# ---- nnLandmark_predict (before a model is needed) --------------------------------------------------------------

def predict_args(tmp, *extra):
    (tmp / "in").mkdir(exist_ok=True)
    return ["-i", tmp / "in", "-o", tmp / "out", "-d", "502", "-device", "cpu", *extra]


@bad("predict")
def predict_step_size_zero(tmp):
    return predict_args(tmp, "-step_size", "0"), "-step_size"


@bad("predict")
def predict_step_size_above_one(tmp):
    return predict_args(tmp, "-step_size", "1.5"), "-step_size"


@bad("predict")
def predict_unknown_format(tmp):
    return predict_args(tmp, "--format", "json,stl"), "stl"


@bad("predict")
def predict_negative_radius(tmp):
    return predict_args(tmp, "--search_radius", "-3"), "--search_radius"


@bad("predict")
def predict_model_never_trained(tmp):
    raw_dataset(tmp)
    return predict_args(tmp), "no trained model *__*__3d_fullres"


# ---- nnLandmark_evaluate ----------------------------------------------------------------------------------------

@bad("evaluate")
def voxel_ground_truth(tmp):
    folder = raw_dataset(tmp)
    pred = prediction_folder(tmp, {"a": good_point(), "b": good_point((7, 7, 7))})
    return ["-pred", pred, "-gt", folder / "all_landmarks_voxel.json"], "all_landmarks_voxel.json"


@bad("evaluate")
def present_as_a_string(tmp):
    pred = prediction_folder(tmp, {"a": good_point(present="false"), "b": good_point((7, 7, 7))})
    return ["-pred", pred, "-gt", world_gt(tmp)], "c1.json"


@bad("evaluate")
def prediction_without_world(tmp):
    point = good_point()
    del point["world"]
    pred = prediction_folder(tmp, {"a": point, "b": good_point((7, 7, 7))})
    return ["-pred", pred, "-gt", world_gt(tmp)], "c1.json"


@bad("evaluate")
def prediction_in_another_schema(tmp):
    pred = prediction_folder(tmp, {"a": [3, 3, 3], "b": [7, 7, 7]})
    return ["-pred", pred, "-gt", world_gt(tmp)], "c1.json"


@bad("evaluate")
def prediction_json_broken(tmp):
    pred = tmp / "pred"
    pred.mkdir()
    (pred / "c1.json").write_text('{"case": "c1", "landm')
    return ["-pred", pred, "-gt", world_gt(tmp)], "c1.json"


@bad("evaluate")
def same_prediction_folder_twice(tmp):
    pred = prediction_folder(tmp, {"a": good_point(), "b": good_point((7, 7, 7))})
    return ["-pred", pred, pred, "-gt", world_gt(tmp)], "pred"


@bad("evaluate")
def pairs_naming_unknown_landmarks(tmp):
    pred = prediction_folder(tmp, {"a": good_point(), "b": good_point((7, 7, 7))})
    return ["-pred", pred, "-gt", world_gt(tmp), "--pairs", "a:zz"], "zz"


@bad("evaluate")
def sdr_threshold_nan(tmp):
    pred = prediction_folder(tmp, {"a": good_point(), "b": good_point((7, 7, 7))})
    return ["-pred", pred, "-gt", world_gt(tmp), "--thresholds", "nan"], "--thresholds"


@bad("evaluate")
def evaluation_output_is_a_file(tmp):
    pred = prediction_folder(tmp, {"a": good_point(), "b": good_point((7, 7, 7))})
    (tmp / "out").write_text("")
    return ["-pred", pred, "-gt", world_gt(tmp), "-o", tmp / "out"], "out"


@bad("evaluate")
def ground_truth_missing(tmp):
    pred = prediction_folder(tmp, {"a": good_point(), "b": good_point((7, 7, 7))})
    return ["-pred", pred, "-gt", tmp / "nowhere.json"], "nowhere.json"


# ---- nnLandmark_calibrate ---------------------------------------------------------------------------------------

def calibration_dataset(tmp):
    raw_dataset(tmp, lambda d: d.update(landmarks_may_be_absent=["a"]))


@bad("calibrate")
def nan_likelihoods(tmp):
    calibration_dataset(tmp)
    fold_validation(Path(os.environ["nnUNet_results"]), {0: {"c1": float("nan")}})
    return ["-d", "502"], "'a'"


@bad("calibrate")
def text_likelihood(tmp):
    calibration_dataset(tmp)
    fold_validation(Path(os.environ["nnUNet_results"]), {0: {"c1": "high"}})
    return ["-d", "502"], "c1.json"


@bad("calibrate")
def case_validated_in_two_folds(tmp):
    calibration_dataset(tmp)
    fold_validation(Path(os.environ["nnUNet_results"]), {0: {"c1": 0.9}, 1: {"c1": 0.8}})
    return ["-d", "502"], "c1"


# ---- nnLandmark_demo --------------------------------------------------------------------------------------------

@bad("demo")
def demo_workdir_is_a_file(tmp):
    (tmp / "work").write_text("")
    return ["--workdir", tmp / "work"], "work"


# ---- inputs that need a trained model ---------------------------------------------------------------------------

def trained_predict_args(tmp, *extra):
    return ["-i", tmp / "in", "-o", tmp / "out", "-d", "991", "-tr", "nnLandmarkTrainer_CPU", "-p",
            "nnLandmarkCPUPlans", "-device", "cpu", "--disable_tqdm", *extra]


@bad("predict", MODEL_CORPUS)
def predict_on_missing_cuda(tmp, raw):
    (tmp / "in").mkdir()
    return trained_predict_args(tmp)[:-3] + ["-device", "cuda"], "cuda"


@bad("predict", MODEL_CORPUS)
def input_not_in_channel_naming(tmp, raw):
    (tmp / "in").mkdir()
    (tmp / "in" / "scan.nii.gz").write_bytes((raw / "imagesTs" / "sphere_020_0000.nii.gz").read_bytes())
    return trained_predict_args(tmp), "scan.nii.gz"


@bad("predict", MODEL_CORPUS)
def input_2d(tmp, raw):
    (tmp / "in").mkdir()
    sitk.WriteImage(sitk.Image(20, 20, sitk.sitkFloat32), str(tmp / "in" / "flat_0000.nii.gz"))
    return trained_predict_args(tmp), "flat_0000.nii.gz"


@bad("predict", MODEL_CORPUS)
def input_truncated(tmp, raw):
    (tmp / "in").mkdir()
    data = (raw / "imagesTs" / "sphere_020_0000.nii.gz").read_bytes()
    (tmp / "in" / "cut_0000.nii.gz").write_bytes(data[:len(data) // 2])
    return trained_predict_args(tmp), "cut_0000.nii.gz"


@bad("predict", MODEL_CORPUS)
def output_is_a_file(tmp, raw):
    (tmp / "in").mkdir()
    (tmp / "in" / "s_0000.nii.gz").write_bytes((raw / "imagesTs" / "sphere_020_0000.nii.gz").read_bytes())
    (tmp / "out").write_text("")
    return trained_predict_args(tmp), "out"


@bad("predict", MODEL_CORPUS)
def input_vector_image(tmp, raw):
    (tmp / "in").mkdir()
    sitk.WriteImage(sitk.Image([20, 20, 20], sitk.sitkVectorFloat32, 3), str(tmp / "in" / "rgb_0000.nii.gz"))
    return trained_predict_args(tmp), "rgb_0000.nii.gz"


@bad("predict", MODEL_CORPUS)
def input_dangling_symlink(tmp, raw):
    (tmp / "in").mkdir()
    (tmp / "in" / "gone_0000.nii.gz").symlink_to(tmp / "nowhere.nii.gz")
    return trained_predict_args(tmp), "gone_0000.nii.gz"


@bad("predict", MODEL_CORPUS)
def input_folder_is_a_file(tmp, raw):
    (tmp / "in").write_text("")
    return trained_predict_args(tmp), "in"


class RunsCode:
    """Unpickling this calls ``Path.touch``: a stand-in for a checkpoint that runs code when loaded."""
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


@bad("predict", MODEL_CORPUS)
def checkpoint_that_runs_code(tmp, raw):
    import torch
    model = Path(os.environ["nnUNet_results"]) / "Dataset991_E2E" / "nnLandmarkTrainer_CPU__nnLandmarkCPUPlans__3d_fullres"
    checkpoint = model / "fold_0" / "checkpoint_final.pth"
    content = torch.load(checkpoint, weights_only=False)
    content["payload"] = RunsCode(str(tmp / "code_ran"))
    torch.save(content, checkpoint, pickle_module=pickle)
    (tmp / "in").mkdir()
    return trained_predict_args(tmp, "-f", "0"), "checkpoint_final.pth"


# ---- the tests --------------------------------------------------------------------------------------------------

def run_bad_input(command, argv, capsys):
    """Run a command's main on argv; returns (exit code, stderr)."""
    with pytest.raises(SystemExit) as exit_info:
        COMMANDS[command].main([str(a) for a in argv])
    return exit_info.value.code, capsys.readouterr().err


def assert_one_clear_line(code, stderr, names):
    last = stderr.replace("\r", "\n").strip().splitlines()[-1]
    print(last)
    assert "Traceback" not in stderr, stderr
    assert code == 2, stderr
    assert last.startswith("error: ") or ": error: " in last, stderr      # ours, or argparse's "PROG: error: "
    assert names in last, f"the error line does not name {names!r}: {last}"


@pytest.mark.parametrize("command, build", CORPUS)
def test_bad_input_fails_with_one_line_naming_the_culprit(command, build, nnunet_dirs, capsys, monkeypatch):
    tmp = nnunet_dirs / "inputs"
    tmp.mkdir()
    monkeypatch.chdir(tmp)
    argv, names = build(tmp)
    raw_before = sorted(os.listdir(os.environ["nnUNet_raw"])) if os.path.isdir(os.environ["nnUNet_raw"]) else None
    code, stderr = run_bad_input(command, argv, capsys)
    assert_one_clear_line(code, stderr, names)
    if command == "convert" and raw_before is not None:       # nothing half-written, no leftovers
        assert sorted(os.listdir(os.environ["nnUNet_raw"])) == raw_before


@pytest.mark.parametrize("command, build", MODEL_CORPUS)
def test_bad_input_to_a_trained_model_fails_with_one_line(command, build, trained, tmp_path, capsys, monkeypatch):
    import shutil
    root, raw, env = trained
    results = tmp_path / "results"
    shutil.copytree(root / "results", results)
    monkeypatch.setenv("nnUNet_raw", env["nnUNet_raw"])
    monkeypatch.setenv("nnUNet_preprocessed", env["nnUNet_preprocessed"])
    monkeypatch.setenv("nnUNet_results", str(results))
    argv, names = build(tmp_path, raw)
    code, stderr = run_bad_input(command, argv, capsys)
    assert_one_clear_line(code, stderr, names)
    assert not (tmp_path / "code_ran").exists(), "loading the checkpoint ran code"
    assert not list((tmp_path / "out").glob("*.json")) if (tmp_path / "out").is_dir() else True


def test_the_corpus_covers_every_command_with_at_least_60_inputs():
    commands = {p.values[0] for p in CORPUS + MODEL_CORPUS}
    assert len(CORPUS) + len(MODEL_CORPUS) >= 60 and commands == set(COMMANDS)

