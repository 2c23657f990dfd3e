"""Benchmark converters (AFIDs, PDDCA, MML) on small fabricated trees that mimic the distributed layouts."""
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage
from scipy.spatial.transform import Rotation

from nnlandmark.dataset_conversion.benchmarks import afids, mml, pddca, split_file
from nnlandmark.dataset_conversion.dataset_writer import ConversionWarning
from nnlandmark.errors import LandmarkError
from nnlandmark.geometry import lps_to_ras

SIZE = 20
GRID = (2, 6, 10, 14, 18)  # 4 voxels apart: jittered landmarks keep their 3x3x3 cubes apart


def make_image(rng, spacing=None):
    """20^3 image with a non-trivial origin, anisotropic spacing and an oblique direction."""
    image = sitk.GetImageFromArray(rng.normal(100, 20, (SIZE, SIZE, SIZE)).astype(np.float32))
    image.SetSpacing(spacing or tuple(rng.uniform(0.5, 1.5, 3)))
    image.SetOrigin(tuple(rng.uniform(-80, 80, 3)))
    image.SetDirection(Rotation.from_euler("XYZ", rng.uniform(-0.4, 0.4, 3)).as_matrix().ravel().tolist())
    return image


def grid_indices(rng, n):
    """n continuous ITK indices on distinct grid nodes, jittered by < 0.3 voxel."""
    nodes = np.array(np.meshgrid(GRID, GRID, GRID, indexing="ij")).reshape(3, -1).T
    return nodes[rng.choice(len(nodes), n, replace=False)] + rng.uniform(-0.3, 0.3, (n, 3))


def world_lps(image, index):
    return np.array(image.TransformContinuousIndexToPhysicalPoint([float(v) for v in index]))


def fcsv_text(rows, system="0", version="4.6"):
    """Slicer fcsv as AFIDs/PDDCA ship it: rows (id, (x, y, z), label, desc)."""
    lines = [f"# Markups fiducial file version = {version}", f"# CoordinateSystem = {system}",
             "# columns = id,x,y,z,ow,ox,oy,oz,vis,sel,lock,label,desc,associatedNodeID"]
    lines += [f"{i},{float(x)!r},{float(y)!r},{float(z)!r},0,0,0,1,1,1,1,{label},{desc},vtkMRMLScalarVolumeNode1"
              for i, (x, y, z), label, desc in rows]
    return "\n".join(lines) + "\n"


def check_dataset(folder, names, truth, test_cases):
    """dataset.json labels, world coordinates (LPS, 1e-4 mm), Tr/Ts placement and cube centres."""
    folder = Path(folder)
    dataset = json.loads((folder / "dataset.json").read_text())
    assert list(dataset["labels"].items()) == [("background", 0)] + [(n, i + 1) for i, n in enumerate(names)]
    assert dataset["numTraining"] == len(truth) - len(test_cases)
    world = json.loads((folder / "all_landmarks_world.json").read_text())
    assert world.pop("coordinate_system") == "LPS" and sorted(world) == sorted(truth)
    for case, (image, points) in truth.items():
        split = "Ts" if case in test_cases else "Tr"
        assert (folder / f"images{split}" / f"{case}_0000.nii.gz").is_file()
        assert not (folder / f"images{'Tr' if split == 'Ts' else 'Ts'}" / f"{case}_0000.nii.gz").exists()
        for name in names:
            if name in points:
                np.testing.assert_allclose(world[case][name], world_lps(image, points[name]), atol=1e-4)
            else:
                assert world[case][name] is None
        seg = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / f"labels{split}" / f"{case}.nii.gz")))
        present = [n for n in names if n in points]
        centres = ndimage.center_of_mass(np.ones_like(seg), seg, [names.index(n) + 1 for n in present])
        for name, centre in zip(present, centres):  # sub-voxel encoded cubes: centre of mass nearer than the voxel
            error = np.linalg.norm(np.asarray(centre)[::-1] - points[name])
            assert error <= np.linalg.norm(np.rint(points[name]) - points[name]) + 1e-9


# ---------------------------------------------------------------- AFIDs

AFIDS_SUBJECTS = [  # (dataset folder, subject, BIDS entities of the fcsv, image file name, fcsv CoordinateSystem)
    ("AFIDs-HCP", "sub-103111", "sub-103111", "sub-103111_T1w.nii.gz", "0"),
    ("AFIDs-HCP", "sub-105014", "sub-105014", "sub-105014_T1w.nii.gz", "RAS"),
    ("AFIDs-OASIS", "sub-0001", "sub-0001", "sub-0001_T1w.nii.gz", "0"),
    ("LHSCPD", "sub-093", "sub-093", "sub-093_run-01_T1w.nii.gz", "1"),
    ("SNSX", "sub-C004", "sub-C004_acq-MP2RAGE_run-01", "sub-C004_acq-MP2RAGE_run-01_T1w.nii.gz", "0"),
]


def make_afids_tree(root, rng):
    truth = {}
    datasets = root / "afids-data" / "data" / "datasets"
    for dataset, subject, entities, image_name, system in AFIDS_SUBJECTS:
        base = datasets / dataset
        (base / subject / "anat").mkdir(parents=True)
        image = make_image(rng)
        sitk.WriteImage(image, str(base / subject / "anat" / image_name))
        index = grid_indices(rng, 32)
        points = {n: index[i] for i, n in enumerate(afids.LANDMARKS)}
        rows = []
        for number, (name, p) in enumerate(points.items(), start=1):
            lps = world_lps(image, p)
            xyz = lps if system in ("1", "LPS") else lps_to_ras(lps)
            rows.append((f"vtkMRMLMarkupsFiducialNode_{number}", xyz, number, name.replace("_", " ")))
        if subject == "sub-0001":  # an AFID without position
            rows[13] = (rows[13][0], (float("nan"),) * 3, 14, "pineal gland")
            del points["pineal_gland"]
        gt = base / "derivatives" / "afids_groundtruth" / subject / "anat"
        gt.mkdir(parents=True)
        (gt / f"{entities}_space-T1w_desc-groundtruth_afids.fcsv").write_text(fcsv_text(rows, system))
        rater = base / "derivatives" / "afids_rater" / subject / "anat"  # single raters: ignored
        rater.mkdir(parents=True)
        (rater / f"{entities}_space-T1w_desc-raterAT_afids.fcsv").write_text(
            fcsv_text([(r[0], (0.0, 0.0, 0.0), r[2], r[3]) for r in rows], system))
        truth[f"{dataset}_{subject}"] = (image, points)
    template = root / "afids-data/data/templates/tpl-MNI152NLin2009cAsym/derivatives/afids_groundtruth/sub-x/anat"
    template.mkdir(parents=True)  # templates are no subjects: ignored
    (template / "sub-x_space-T1w_desc-groundtruth_afids.fcsv").write_text("not an fcsv\n")
    return truth


def test_afids_converts_bids_tree(tmp_path):
    truth = make_afids_tree(tmp_path, np.random.default_rng(1))
    with pytest.warns(ConversionWarning, match="pineal_gland"):
        folder = afids.convert(str(tmp_path / "afids-data"), str(tmp_path / "raw"))
    assert Path(folder).name == "Dataset801_AFIDs"
    test = sorted(p.name[:-len("_0000.nii.gz")] for p in (Path(folder) / "imagesTs").iterdir())
    # 5 cases -> round(5 * 22/132) = 1 test case, from the largest subset (HCP)
    assert len(test) == 1 and test[0].startswith("AFIDs-HCP_")
    check_dataset(folder, list(afids.LANDMARKS), truth, test)
    dataset = json.loads((Path(folder) / "dataset.json").read_text())
    assert dataset["channel_names"] == {"0": "T1"} and len(dataset["labels"]) == 1 + 32     # background + 32 AFIDs


def test_afids_split_is_stratified_22_of_132():
    subset_of = {f"{s}_sub-{i:03d}": s for s, n in (("AFIDs-HCP", 30), ("AFIDs-OASIS", 30), ("LHSCPD", 40),
                                                    ("SNSX", 32)) for i in range(n)}
    test = afids.stratified_test_cases(subset_of)
    counts = {s: sum(subset_of[c] == s for c in test) for s in set(subset_of.values())}
    assert counts == {"AFIDs-HCP": 5, "AFIDs-OASIS": 5, "LHSCPD": 7, "SNSX": 5}
    assert len(subset_of) - len(test) == 110
    # a case's draw does not depend on the other subsets being present
    hcp_only = {c: s for c, s in subset_of.items() if s == "AFIDs-HCP"}
    assert sorted(afids.stratified_test_cases(hcp_only, fraction=(5, 30))) == sorted(
        c for c in test if c.startswith("AFIDs-HCP"))


def test_afids_wrong_layout(tmp_path):
    (tmp_path / "somewhere" / "sub-01" / "anat").mkdir(parents=True)
    with pytest.raises(LandmarkError, match=r"no sub-\*/ folders with \*_afids.fcsv under .*somewhere.*"
                                            r"afids-data/data/datasets"):
        afids.collect_cases(str(tmp_path / "somewhere"))


def test_afids_unfetched_datalad_file_is_named(tmp_path):
    make_afids_tree(tmp_path, np.random.default_rng(2))
    image = tmp_path / "afids-data/data/datasets/SNSX/sub-C004/anat/sub-C004_acq-MP2RAGE_run-01_T1w.nii.gz"
    image.unlink()
    image.symlink_to("../../.git/annex/objects/XX/YY/SHA256E-s1--abc.nii.gz")
    with pytest.raises(LandmarkError, match="sub-C004_acq-MP2RAGE_run-01_T1w.nii.gz is a DataLad"):
        afids.collect_cases(str(tmp_path / "afids-data"))


# ---------------------------------------------------------------- PDDCA

PDDCA_FILE_ORDER = ("chin", "mand_r", "mand_l", "odont_proc", "occ_bone")  # row order of Landmarks_0001.fcsv


def make_pddca_tree(root, rng):
    """Part folders side by side: two cases in part1 (0522c0002 is a listed test case), one in part2, and a
    part3 case without landmark file."""
    truth = {}
    for part, case, with_landmarks in (("part1", "0522c0001", True), ("part1", "0522c0002", True),
                                       ("part2", "0522c0329", True), ("part3", "0522c0555", False)):
        folder = root / f"PDDCA-1.4.1_{part}" / case
        (folder / "structures").mkdir(parents=True)
        image = make_image(rng)
        sitk.WriteImage(image, str(folder / "img.nrrd"))
        mask = sitk.Image(image.GetSize(), sitk.sitkUInt8)
        mask.CopyInformation(image)
        sitk.WriteImage(mask, str(folder / "structures" / "Mandible.nrrd"))
        if not with_landmarks:
            continue
        index = grid_indices(rng, 5)
        points = dict(zip(PDDCA_FILE_ORDER, index))
        rows = [(f"vtkMRMLMarkupsFiducialNode_{i}", lps_to_ras(world_lps(image, p)), name, "")
                for i, (name, p) in enumerate(points.items())]
        (folder / "Landmarks_0001.fcsv").write_text(fcsv_text(rows, "0", "4.4"))
        truth[case] = (image, points)
    return truth


def test_pddca_converts_case_folders(tmp_path):
    truth = make_pddca_tree(tmp_path, np.random.default_rng(3))
    with pytest.warns(ConversionWarning, match="6 of the 7 test cases"):
        folder = pddca.convert(str(tmp_path), str(tmp_path / "raw"))
    assert Path(folder).name == "Dataset803_PDDCA"
    assert pddca.LANDMARKS == ("chin", "mand_l", "mand_r", "occ_bone", "odont_proc")
    check_dataset(folder, list(pddca.LANDMARKS), truth, ["0522c0002"])
    assert not list(Path(folder).rglob("0522c0555*"))


def test_pddca_split_file():
    split = json.loads(Path(split_file("pddca")).read_text())
    assert len(split["cases"]) == 33 and len(split["test"]) == 7 and set(split["test"]) <= set(split["cases"])
    assert "not public" in split["source"] or "not published" in split["source"]


def test_pddca_wrong_layout(tmp_path):
    (tmp_path / "PDDCA" / "0522c0001").mkdir(parents=True)
    (tmp_path / "PDDCA" / "0522c0001" / "img.nii.gz").write_text("")
    with pytest.raises(LandmarkError, match=r"no case folders with img.nrrd .* under .*PDDCA: is this the "
                                            r"unpacked PDDCA-1.4.1 folder\?"):
        pddca.collect_cases(str(tmp_path / "PDDCA"))


# ---------------------------------------------------------------- MML

def make_mml_tree(root, rng):
    """train: complete, complete with a wrong header spacing, incomplete; val: complete; test: complete."""
    truth, base = {}, root / "mmld_dataset"
    for split, stem, missing_row, header_spacing in (
            ("train", "001", None, None), ("train", "002", None, (1.0, 1.0, 1.0)), ("train", "003", 4, None),
            ("val", "101", None, None), ("test", "201", None, None)):
        (base / split).mkdir(parents=True, exist_ok=True)
        spacing = tuple(rng.uniform(0.3, 0.6, 3))
        image = make_image(rng, spacing)
        written = sitk.Image(image)
        if header_spacing:
            written.SetSpacing(header_spacing)
        sitk.WriteImage(written, str(base / split / f"{stem}_volume.nrrd"))
        label = grid_indices(rng, 14)
        if missing_row is not None:
            label[missing_row] = -1000.0
        np.save(base / split / f"{stem}_label.npy", label)
        np.save(base / split / f"{stem}_spacing.npy", np.array(spacing))
        truth[stem] = (split, image, dict(zip(mml.LANDMARKS, label)))
    return truth


def test_mml_converts_complete_subset_with_official_split(tmp_path):
    truth = make_mml_tree(tmp_path, np.random.default_rng(4))
    with pytest.warns(ConversionWarning, match="1 MML volume.*002"):
        folder = mml.convert(str(tmp_path), str(tmp_path / "raw"))
    assert Path(folder).name == "Dataset802_MML"
    assert len(json.loads((Path(folder) / "dataset.json").read_text())["labels"]) == 1 + 14   # 14 molar landmarks
    kept = {stem: (image, points) for stem, (split, image, points) in truth.items() if stem in ("001", "002", "201")}
    check_dataset(folder, list(mml.LANDMARKS), kept, ["201"])
    assert not list(Path(folder).rglob("003*")) and not list(Path(folder).rglob("101*"))
    # the corrected image carries the _spacing.npy spacing, origin and direction unchanged
    image = sitk.ReadImage(str(Path(folder) / "imagesTr" / "002_0000.nii.gz"))
    np.testing.assert_allclose(image.GetSpacing(), truth["002"][1].GetSpacing(), rtol=1e-6)
    np.testing.assert_allclose(image.GetOrigin(), truth["002"][1].GetOrigin(), atol=1e-4)
    assert not [p for p in (tmp_path / "raw").iterdir() if p.name.startswith(".mml")]


def test_mml_incomplete_cases_on_request(tmp_path):
    make_mml_tree(tmp_path, np.random.default_rng(5))
    with pytest.warns(ConversionWarning, match="another spacing"):
        cases, test = mml.collect_cases(str(tmp_path / "mmld_dataset"), str(tmp_path), complete_only=False)
    by_id = {c.case: c for c in cases}
    assert sorted(by_id) == ["001", "002", "003", "201"] and test == ["201"]
    assert by_id["003"].missing == [mml.LANDMARKS[4]] and len(by_id["003"].landmarks) == 13


def test_mml_wrong_layout(tmp_path):
    (tmp_path / "mml" / "training").mkdir(parents=True)
    with pytest.raises(LandmarkError, match=r"no train/\*_volume.nrrd or test/\*_volume.nrrd under .*mml: is this "
                                            r"the mmld_dataset folder"):
        mml.collect_cases(str(tmp_path / "mml"))
