"""Sub-voxel targets and closely spaced landmarks, trained on CPU (issue: beyond the paper, 1 and 5).

Synthetic scans (64³, 1 mm) with every landmark at a random sub-voxel position, encoded twice:

- **paper**: a plain 3x3x3 cube on each landmark's nearest voxel (with ``--data pair`` painted one after the other:
  a later cube overwrites an earlier one, as the reference implementation does, and a landmark left without a voxel
  is trained as "nothing here");
- **nnlandmark**: ``landmarks_to_labelmap`` - cubes with sub-voxel face voxels (centre of mass = true position),
  shared voxels split between close landmarks (each voxel to the nearest landmark), cut blobs trimmed back onto
  their landmark.

``--data spheres`` (default; item 1): the demo's data, three separated spheres (radius 3/5/7 voxels), 20 training
and 10 test cases. ``--data pair`` (item 5): the spheres plus a pair of small "mammillary bodies" (balls of radius
1.3 voxels) whose centres lie 1.15-2.1 voxels apart, roughly left-right (brain fiducials 2.3-4.2 mm apart at
nnU-Net's 2 mm), so that their 3x3x3 cubes always overlap. ``--data small`` (item 1 on a model that converges in a
CPU budget): 32³ scans, so one network patch covers the scan, with two balls (radius 3 and 4 voxels) drawn with
partial-volume edges; use ``--cases 40 10``.

Each encoding trains nnLandmarkTrainer_CPU on fold 0 (same plans, same split); the held-out test cases are predicted
with the integer argmax (paper) and with the refined sub-voxel maximum. Errors in voxels (= mm here).

    python benchmarks/subvoxel_and_close_landmarks.py [--data spheres|pair|small] [--workdir DIR] [--out FILE]
                                                                                  (about 25 CPU minutes)
    python benchmarks/subvoxel_and_close_landmarks.py --trainer nnLandmarkTrainer_CPU_4epochs   (a quick smoke run)
"""
import json
import shutil
from itertools import product
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from nnlandmark.geometry import volume_in_itk_order
from nnlandmark.io.predictions import read_landmark_table
from nnlandmark.landmark_set import LANDMARKS_VOXEL_JSON

from _common import (benchmark_parser, default_out, markdown_table, nnunet_env, plan_cpu, predict_test_cases,
                     scene_dataset, spheres, train_cpu, training_env, write_json)
from _scenes import CLOSE, CLOSE_PAIR_NAMES, SMALL_BALLS, partial_volume_balls, spheres_and_close_pair, write_scans

DATASETS = {"paper": 983, "nnlandmark": 984}


def paper_labelmap(reference: sitk.Image, points: dict, names: list) -> sitk.Image:
    """The reference encoding: a 3x3x3 cube on the nearest voxel, later landmarks overwrite earlier ones."""
    seg = np.zeros(sitk.GetArrayViewFromImage(reference).shape, np.uint8)
    volume = volume_in_itk_order(seg)  # the same voxels, indexed (x, y, z)
    for value, name in enumerate(names, start=1):
        centre = np.rint(points[name]).astype(int)
        for offset in product((-1, 0, 1), repeat=3):
            volume[tuple(centre + offset)] = value
    out = sitk.GetImageFromArray(seg)
    out.CopyInformation(reference)
    return out


def prepare(workdir: Path, env: dict, n_train: int, n_test: int, scene, names: list, title: str) -> dict:
    """Write both datasets (same images, same split) and plan each."""
    images = workdir / "images"
    truth = write_scans(images, n_train + n_test, scene, np.random.default_rng(11), "scan")
    raws = {}
    for encoding, dataset in DATASETS.items():  # the paper trains a landmark whose cube was overwritten to "nothing"
        extra = {"landmarks_may_be_absent": True} if encoding == "paper" else None
        raws[encoding] = scene_dataset(env, dataset, f"{title}{encoding.title()}", images, truth, n_train,
                                       landmark_names=names, dataset_json_extra=extra)
    for label_file in (raws["paper"] / "labelsTr").glob("*.nii.gz"):
        points = truth[label_file.name[:-len(".nii.gz")]]
        sitk.WriteImage(paper_labelmap(sitk.ReadImage(str(label_file)), points, names), str(label_file))
    for dataset in DATASETS.values():
        plan_cpu(env, dataset)
    return raws


def prepare_spheres(env: dict, n_train: int, n_test: int) -> dict:
    """The demo's spheres (3 separated landmarks), encoded both ways from the same seed."""
    raws = {}
    for encoding, dataset in DATASETS.items():
        raws[encoding] = spheres(env, dataset, f"Spheres{encoding.title()}", n_train=n_train, n_test=n_test, seed=3,
                                 subvoxel_cubes=encoding == "nnlandmark")
        plan_cpu(env, dataset)
    return raws


def train_and_test(env: dict, raw: Path, trainer: str, workdir: Path, encoding: str) -> list:
    train_cpu(env, raw, trainer)
    truth = read_landmark_table(raw / LANDMARKS_VOXEL_JSON)[1]
    names = list(next(iter(truth.values())))
    rows = []
    for peaks, flag in (("integer argmax", ["--integer_peaks"]), ("refined", [])):
        out = workdir / f"predictions_{encoding}_{peaks.split()[0]}"
        predict_test_cases(env, raw, trainer, out, *flag)
        errors = {n: [] for n in names}
        for file in (f for f in out.glob("*.json") if f.stem in truth):
            landmarks = json.loads(file.read_text())["landmarks"]
            for name in names:
                errors[name].append(np.linalg.norm(np.subtract(landmarks[name]["voxel"], truth[file.stem][name])))
        separated = np.concatenate([errors[n] for n in names if n not in CLOSE])
        rows.append({"labels": encoding, "peaks": peaks, "separated_mre": float(separated.mean()),
                     "separated_median": float(np.median(separated)), "n_cases": len(errors[names[0]])})
        if any(n in errors for n in CLOSE):
            close = np.concatenate([errors[n] for n in CLOSE])
            rows[-1].update(close_mre=float(close.mean()), close_median=float(np.median(close)),
                            close_within_1=float(np.mean(close <= 1.0)))
    return rows


def encoding_stats(raws: dict) -> list:
    """How well each training label map encodes the true positions (centre of mass vs truth, voxels)."""
    from nnlandmark.labelmaps import landmarks_from_labelmap
    rows = []
    for encoding, raw in raws.items():
        truth = read_landmark_table(raw / LANDMARKS_VOXEL_JSON)[1]
        names = list(next(iter(truth.values())))
        errors, lost = {"separated": [], "close": []}, 0
        for label_file in sorted((raw / "labelsTr").glob("*.nii.gz")):
            found = landmarks_from_labelmap(sitk.GetArrayFromImage(sitk.ReadImage(str(label_file))),
                                            {n: i + 1 for i, n in enumerate(names)})
            for name in names:
                if name not in found:
                    lost += 1
                    continue
                errors["close" if name in CLOSE else "separated"].append(
                    np.linalg.norm(found[name] - truth[label_file.name[:-7]][name]))
        rows.append({"labels": encoding, "separated_label_error": float(np.mean(errors["separated"])), "lost": lost})
        if errors["close"]:
            rows[-1]["close_label_error"] = float(np.mean(errors["close"]))
    return rows


def main():
    parser = benchmark_parser(__doc__, workdir="subvoxel_benchmark")
    parser.add_argument("--trainer", default="nnLandmarkTrainer_CPU")
    parser.add_argument("--data", choices=["spheres", "pair", "small"], default="spheres",
                        help="spheres: the demo's three separated spheres (sub-voxel targets); pair: spheres plus "
                             "the close pair of bodies (closely spaced landmarks); small: two partial-volume balls "
                             "in 32³ scans, one patch each (sub-voxel targets on a model that converges on CPU)")
    parser.add_argument("--cases", type=int, nargs=2, default=(20, 10), metavar=("TRAIN", "TEST"))
    args = parser.parse_args()
    workdir = Path(args.workdir).resolve()
    shutil.rmtree(workdir / "nnUNet_results", ignore_errors=True)
    env = nnunet_env(workdir)
    if args.data == "spheres":
        raws = prepare_spheres(env, *args.cases)
    elif args.data == "pair":
        raws = prepare(workdir, env, *args.cases, spheres_and_close_pair, CLOSE_PAIR_NAMES, "Close")
    else:
        raws = prepare(workdir, env, *args.cases, partial_volume_balls, list(SMALL_BALLS), "Small")
    labels = encoding_stats(raws)
    rows = []
    for encoding in DATASETS:
        rows += train_and_test(training_env(env), raws[encoding], args.trainer, workdir, encoding)
    pair = args.data == "pair"
    print(markdown_table(["training labels", "centre-of-mass error, separated (voxel)"] +
                         ["centre-of-mass error, close pair (voxel)"] * pair + ["landmarks left without a voxel"],
                         [[r["labels"], f"{r['separated_label_error']:.3f}"] +
                          ([f"{r['close_label_error']:.3f}"] if pair else []) + [r["lost"]] for r in labels]))
    print()
    print(markdown_table(["training labels", "peaks", "separated MRE", "separated median"] +
                         ["close-pair MRE", "close-pair median", "close-pair within 1 voxel"] * pair,
                         [[r["labels"], r["peaks"], f"{r['separated_mre']:.3f}", f"{r['separated_median']:.3f}"] +
                          ([f"{r['close_mre']:.3f}", f"{r['close_median']:.3f}",
                            f"{100 * r['close_within_1']:.0f} %"] if pair else []) for r in rows]))
    write_json(args.out or default_out(f"subvoxel_{args.data}"),
               {"data": args.data, "trainer": args.trainer, "labels": labels, "predictions": rows})


if __name__ == "__main__":
    main()
