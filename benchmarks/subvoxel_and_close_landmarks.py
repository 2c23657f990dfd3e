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
import argparse
import json
import os
import shutil
from itertools import product
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from _common import markdown_table, predict_test_cases, run_command, train_cpu, write_json

DATASETS = {"paper": 983, "nnlandmark": 984}
SIZE = 64
SPHERES = {"small_sphere": (3.0, 2.0), "medium_sphere": (5.0, -1.5), "large_sphere": (7.0, 1.0)}  # radius, value
BODY_RADIUS, BODY_VALUE = 1.3, 2.5
PAIR_DISTANCE = (1.15, 2.1)  # voxels: the mammillary bodies' 2.3-4.2 mm at nnU-Net's 2 mm
SEPARATED = list(SPHERES)
CLOSE = ["left_body", "right_body"]
NAMES = SEPARATED + CLOSE
SMALL_SIZE = 32
SMALL_BALLS = {"bright_ball": (3.0, 2.0), "dark_ball": (4.0, -1.5)}  # radius, value


def grid_and_background(rng, size: int) -> tuple:
    """Every voxel's (x, y, z) index and a smooth, noisy background, numpy (z, y, x), for a size³ scan."""
    xyz = np.stack(np.meshgrid(*[np.arange(size)] * 3, indexing="ij"), -1)[..., ::-1]
    return xyz, ndimage.gaussian_filter(rng.normal(0, 1, (size,) * 3), 4) * 3 + rng.normal(0, 0.15, (size,) * 3)


def make_case(rng) -> tuple:
    """Image (numpy z, y, x) and landmark positions as continuous ITK index (x, y, z)."""
    while True:
        points = {n: rng.uniform(r + 4, SIZE - r - 5, 3) for n, (r, _) in SPHERES.items()}
        middle = rng.uniform(10, SIZE - 11, 3)
        direction = np.array([1.0, 0, 0]) + rng.normal(0, 0.3, 3)  # left-right, tilted
        direction /= np.linalg.norm(direction)
        half = rng.uniform(*PAIR_DISTANCE) / 2
        points["left_body"], points["right_body"] = middle + half * direction, middle - half * direction
        radii = {**{n: r for n, (r, _) in SPHERES.items()}, "left_body": BODY_RADIUS, "right_body": BODY_RADIUS}
        apart = [np.linalg.norm(points[a] - points[b]) > radii[a] + radii[b] + 4
                 for a in SEPARATED for b in NAMES if a < b or b in CLOSE]
        if all(apart):
            break
    xyz, image = grid_and_background(rng, SIZE)
    for name, (radius, value) in SPHERES.items():
        image += value * (np.linalg.norm(xyz - points[name], axis=-1) <= radius)
    for name in CLOSE:
        image += BODY_VALUE * (np.linalg.norm(xyz - points[name], axis=-1) <= BODY_RADIUS)
    return image.astype(np.float32), points


def make_small_case(rng) -> tuple:
    """A 32³ scan (one network patch, so no sliding-window seams) with two balls at random sub-voxel positions,
    drawn with partial-volume edges as a scanner's voxel averages would: the image itself says where each centre
    lies within its voxel."""
    while True:
        points = {n: rng.uniform(r + 3, SMALL_SIZE - r - 4, 3) for n, (r, _) in SMALL_BALLS.items()}
        if np.linalg.norm(points["bright_ball"] - points["dark_ball"]) > sum(r for r, _ in SMALL_BALLS.values()) + 4:
            break
    xyz, image = grid_and_background(rng, SMALL_SIZE)
    for name, (radius, value) in SMALL_BALLS.items():
        image += value * np.clip(radius + 0.5 - np.linalg.norm(xyz - points[name], axis=-1), 0, 1)
    return image.astype(np.float32), points


def paper_labelmap(reference: sitk.Image, points: dict, names: list) -> sitk.Image:
    """The reference encoding: a 3x3x3 cube on the nearest voxel, later landmarks overwrite earlier ones."""
    seg = np.zeros(sitk.GetArrayViewFromImage(reference).shape, np.uint8)
    for value, name in enumerate(names, start=1):
        x, y, z = np.rint(points[name]).astype(int)
        for dx, dy, dz in product((-1, 0, 1), repeat=3):
            seg[z + dz, y + dy, x + dx] = value
    out = sitk.GetImageFromArray(seg)
    out.CopyInformation(reference)
    return out


def prepare(workdir: Path, env: dict, n_train: int, n_test: int, make_case, names: list, title: str) -> dict:
    """Write both datasets (same images, same split) and plan each."""
    from nnlandmark.dataset_conversion.dataset_writer import CaseSource, write_landmark_dataset
    rng = np.random.default_rng(11)
    images = workdir / "images"
    images.mkdir(parents=True, exist_ok=True)
    cases = []
    for i in range(n_train + n_test):
        image, points = make_case(rng)
        path = images / f"scan_{i:03d}.nii.gz"
        sitk.WriteImage(sitk.GetImageFromArray(image), str(path))
        cases.append(CaseSource(f"scan_{i:03d}", [str(path)], points, "voxel", str(path)))
    test = [c.case for c in cases[n_train:]]
    raws = {}
    for encoding, dataset in DATASETS.items():  # the paper trains a landmark whose cube was overwritten to "nothing"
        extra = {"landmarks_may_be_absent": True} if encoding == "paper" else None
        raws[encoding] = Path(write_landmark_dataset(cases, env["nnUNet_raw"], dataset, f"{title}{encoding.title()}",
                                                     landmark_names=names, test_cases=test, overwrite=True,
                                                     dataset_json_extra=extra))
    for label_file in (raws["paper"] / "labelsTr").glob("*.nii.gz"):
        case = next(c for c in cases if c.case == label_file.name[:-7])
        sitk.WriteImage(paper_labelmap(sitk.ReadImage(str(label_file)), case.landmarks, names), str(label_file))
    for dataset in DATASETS.values():
        run_command(env, "nnLandmark_plan_and_preprocess", "-d", dataset, "--cpu_plans")
    return raws


def prepare_spheres(env: dict, n_train: int, n_test: int) -> dict:
    """The demo's spheres (3 separated landmarks), encoded both ways from the same seed."""
    from nnlandmark.dataset_conversion.synthetic import make_synthetic_dataset
    raws = {}
    for encoding, dataset in DATASETS.items():
        raws[encoding] = Path(make_synthetic_dataset(env["nnUNet_raw"], dataset, f"Spheres{encoding.title()}",
                                                     n_train=n_train, n_test=n_test, seed=3,
                                                     subvoxel_cubes=encoding == "nnlandmark"))
        run_command(env, "nnLandmark_plan_and_preprocess", "-d", dataset, "--cpu_plans")
    return raws


def train_and_test(env: dict, raw: Path, trainer: str, workdir: Path, encoding: str) -> list:
    train_cpu(env, raw, trainer)
    truth = json.loads((raw / "all_landmarks_voxel.json").read_text())
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
    from nnlandmark.dataset_conversion.labelmap import landmarks_from_labelmap
    rows = []
    for encoding, raw in raws.items():
        truth = json.loads((raw / "all_landmarks_voxel.json").read_text())
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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="subvoxel_benchmark")
    parser.add_argument("--out", default=None)
    parser.add_argument("--trainer", default="nnLandmarkTrainer_CPU")
    parser.add_argument("--data", choices=["spheres", "pair", "small"], default="spheres",
                        help="spheres: the demo's three separated spheres (sub-voxel targets); pair: spheres plus "
                             "the close pair of bodies (closely spaced landmarks); small: two partial-volume balls "
                             "in 32³ scans, one patch each (sub-voxel targets on a model that converges on CPU)")
    parser.add_argument("--cases", type=int, nargs=2, default=(20, 10), metavar=("TRAIN", "TEST"))
    args = parser.parse_args()
    workdir = Path(args.workdir).resolve()
    shutil.rmtree(workdir / "nnUNet_results", ignore_errors=True)
    env = {**os.environ, **{v: str(workdir / v) for v in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}}
    if args.data == "spheres":
        raws = prepare_spheres(env, *args.cases)
    elif args.data == "pair":
        raws = prepare(workdir, env, *args.cases, make_case, NAMES, "Close")
    else:
        raws = prepare(workdir, env, *args.cases, make_small_case, list(SMALL_BALLS), "Small")
    labels = encoding_stats(raws)
    rows = []
    for encoding in DATASETS:
        rows += train_and_test({**env, "nnUNet_n_proc_DA": "1"}, raws[encoding], args.trainer, workdir, encoding)
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
    write_json(args.out or f"benchmarks/results/subvoxel_{args.data}.json",
               {"data": args.data, "trainer": args.trainer, "labels": labels, "predictions": rows})


if __name__ == "__main__":
    main()
