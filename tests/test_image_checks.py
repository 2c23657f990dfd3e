"""Images that SimpleITK reads without complaint but wrongly: grids it cannot place voxels with (sheared, scaled,
singular directions; zero or negative spacing), voxel data cut short (ITK fills a short NIfTI with zeros), and
prediction input folders that nnU-Net would misread. Each must end in one LandmarkError naming the file."""
import gzip
import json
import struct

import numpy as np
import pytest
import SimpleITK as sitk

from nnlandmark.commands import convert, plan_and_preprocess
from nnlandmark.errors import LandmarkError
from nnlandmark.io.images import check_image_data, find_input_cases, read_image, read_image_header

SIZE = (6, 5, 4)  # x, y, z
VOXELS = np.arange(np.prod(SIZE), dtype=np.float32).reshape(SIZE[::-1])


def mha(path, spacing="1 1 1", matrix="1 0 0 0 1 0 0 0 1", data=VOXELS.tobytes()):
    """A MetaImage written by hand: its header may say what SimpleITK would never write."""
    path.write_bytes(f"ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\n"
                     f"TransformMatrix = {matrix}\nOffset = 0 0 0\nElementSpacing = {spacing}\n"
                     f"DimSize = {' '.join(map(str, SIZE))}\nElementType = MET_FLOAT\nElementDataFile = LOCAL\n"
                     .encode() + data)
    return path


def nrrd(path, directions):
    """A NRRD with hand-written 'space directions' (their lengths are the spacing)."""
    path.write_bytes(f"NRRD0004\ntype: float\ndimension: 3\nspace: left-posterior-superior\n"
                     f"sizes: {' '.join(map(str, SIZE))}\nspace directions: {directions}\nkinds: domain domain domain\n"
                     f"endian: little\nencoding: raw\nspace origin: (0,0,0)\n\n".encode() + VOXELS.tobytes())
    return path


def nifti_with_sform(path, sform_rows, qform=True):
    """A NIfTI-1 whose sform (RAS rows) is patched in; ``qform=False`` leaves ITK only the sform."""
    sitk.WriteImage(sitk.GetImageFromArray(VOXELS), str(path))
    header = bytearray(path.read_bytes())
    assert struct.unpack("<i", header[:4])[0] == 348  # NIfTI-1: srow_x/y/z at bytes 280/296/312
    header[252:256] = struct.pack("<hh", 1 if qform else 0, 1)
    for row, offset in zip(sform_rows, (280, 296, 312)):
        header[offset:offset + 16] = struct.pack("<4f", *row)
    path.write_bytes(bytes(header))
    return path


def written(path, **options):
    sitk.WriteImage(sitk.GetImageFromArray(VOXELS), str(path), **options)
    return path


TILT = np.tan(np.radians(15))


@pytest.mark.parametrize("make, expected", [
    (lambda d: mha(d / "c1.mha", spacing="1 0 1"), "c1.mha has spacing [1, 0, 1]: every spacing must be a positive "
                                                  "number (fix the header field 'ElementSpacing')"),
    (lambda d: mha(d / "c1.mha", spacing="1 -1.5 1"), "c1.mha has spacing [1, -1.5, 1]: every spacing must be"),
    (lambda d: mha(d / "c1.mha", matrix=f"1 0 0 0 1 0 0 {TILT} 1"), "c1.mha has a sheared direction matrix "
                                                                    "(gantry tilt?): resample it"),
    (lambda d: mha(d / "c1.mha", matrix="2 0 0 0 2 0 0 0 2"), "c1.mha has a direction matrix whose axes have lengths "
                                                              "[2, 2, 2] instead of 1"),
    (lambda d: mha(d / "c1.mha", matrix="1 0 0 1 0 0 0 0 1"), "c1.mha has a direction matrix [1, 1, 0, 0, 0, 0, 0, 0, "
                                                              "1] with two axes along one line"),
    (lambda d: nrrd(d / "c1.nrrd", "(1,0,0) (0,0,0) (0,0,1)"), "c1.nrrd has spacing [1, 0, 1]: every spacing must be "
                                                               "a positive number (fix the header field 'space "
                                                               "directions'"),
    (lambda d: nrrd(d / "c1.nrrd", f"(1,0,0) (0,1,0) (0,{TILT},1)"), "c1.nrrd has a sheared direction matrix"),
    (lambda d: nifti_with_sform(d / "c1.nii", [(1, 0, 0, 0), (0, 1, TILT, 0), (0, 0, 1, 0)]),
     "c1.nii has a sheared direction matrix"),  # ITK would silently use the (unsheared) qform
    (lambda d: nifti_with_sform(d / "c1.nii", [(1, 0, 0, 0), (0, 1, TILT, 0), (0, 0, 1, 0)], qform=False),
     "c1.nii has a sheared direction matrix"),  # ITK: "No orthonormal definition found!"
], ids=["zero_spacing", "negative_spacing", "sheared", "scaled", "singular", "nrrd_zero_spacing", "nrrd_sheared",
        "nifti_sheared_sform", "nifti_sheared_sform_only"])
def test_grids_itk_cannot_place_voxels_with_are_refused(tmp_path, make, expected):
    path = make(tmp_path)
    with pytest.raises(LandmarkError) as error:
        read_image_header(path)
    assert str(error.value).startswith(f"{tmp_path}/{expected}")
    assert "\n" not in str(error.value)


def test_valid_grids_pass_with_their_geometry(tmp_path, oblique_image):
    oblique = oblique_image()  # rotated, y flipped (determinant -1), anisotropic
    sitk.WriteImage(oblique, str(tmp_path / "oblique.nii.gz"))
    header = read_image_header(tmp_path / "oblique.nii.gz")
    assert np.allclose(header.GetDirection(), oblique.GetDirection(), atol=1e-5)
    # a rotation written with 6 digits is orthonormal only to ~1e-6: still accepted
    c, s = np.round(np.cos(0.3), 6), np.round(np.sin(0.3), 6)
    mha(tmp_path / "rounded.mha", matrix=f"{c} {s} 0 {-s} {c} 0 0 0 1")
    assert np.allclose(read_image_header(tmp_path / "rounded.mha").GetDirection()[:2], [c, -s])
    # NRRD keeps the voxel size in the length of 'space directions': that is a spacing, not a scaled direction
    nrrd(tmp_path / "long.nrrd", "(2,0,0) (0,2,0) (0,0,0.5)")
    assert read_image_header(tmp_path / "long.nrrd").GetSpacing() == (2.0, 2.0, 0.5)


def test_convert_refuses_a_sheared_image_and_writes_nothing(nnunet_dirs, fails_with):
    (nnunet_dirs / "images").mkdir()
    (nnunet_dirs / "landmarks").mkdir()
    mha(nnunet_dirs / "images" / "c1.mha", matrix=f"1 0 0 0 1 0 0 {TILT} 1")
    (nnunet_dirs / "landmarks" / "c1.csv").write_text("name,x,y,z\na,2,2,2\nb,4,3,2\n")
    err = fails_with(convert.main, ["-i", str(nnunet_dirs / "images"), "-l", str(nnunet_dirs / "landmarks"),
                                    "-d", "501", "-n", "Tilt", "--coordinate-system", "lps"])
    assert f"{nnunet_dirs / 'images' / 'c1.mha'} has a sheared direction matrix" in err
    assert not list((nnunet_dirs / "nnUNet_raw").iterdir())


@pytest.mark.parametrize("name, options", [("a.nii.gz", {}), ("a.nii", {}), ("a.mha", {"useCompression": True}),
                                           ("a.mha", {}), ("a.mhd", {}), ("a.mhd", {"useCompression": True}),
                                           ("a.nrrd", {"useCompression": True}), ("a.nrrd", {})])
def test_intact_images_are_read_in_full(tmp_path, name, options):
    path = written(tmp_path / name, **options)
    assert np.array_equal(sitk.GetArrayFromImage(read_image(path)), VOXELS)


def _cut_gzip(d):
    data = written(d / "c1.nii.gz").read_bytes()
    (d / "c1.nii.gz").write_bytes(data[:len(data) // 2])


def _corrupt_gzip(d):
    data = bytearray(written(d / "c1.nii.gz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (d / "c1.nii.gz").write_bytes(bytes(data))


def _gzip_cut_within_the_header(d):
    (d / "c1.nii.gz").write_bytes(written(d / "c1.nii.gz").read_bytes()[:30])


def _complete_gzip_of_a_cut_nifti(d):
    data = written(d / "c1.nii").read_bytes()
    (d / "c1.nii").unlink()
    (d / "c1.nii.gz").write_bytes(gzip.compress(data[:-40]))


def _cut_nifti(d):
    data = written(d / "c1.nii").read_bytes()
    (d / "c1.nii").write_bytes(data[:-4])


def _mhd_without_raw(d):
    written(d / "c1.mhd")
    (d / "c1.raw").unlink()


def _mhd_with_short_raw(d):
    written(d / "c1.mhd")
    (d / "c1.raw").write_bytes((d / "c1.raw").read_bytes()[:100])


def _mha_cut(d):
    mha(d / "c1.mha", data=VOXELS.tobytes()[:-4])


def _compressed_mha_cut(d):
    data = written(d / "c1.mha", useCompression=True).read_bytes()
    (d / "c1.mha").write_bytes(data[:-10])


def _nrrd_cut(d):
    data = written(d / "c1.nrrd").read_bytes()
    (d / "c1.nrrd").write_bytes(data[:-8])


@pytest.mark.parametrize("spoil, culprit, expected", [
    (_cut_gzip, "c1.nii.gz", "is truncated or corrupt (gzip stream ends early): copy or export it again"),
    (_corrupt_gzip, "c1.nii.gz", "is truncated or corrupt (gzip: "),
    (_gzip_cut_within_the_header, "c1.nii.gz", "is truncated or corrupt (gzip stream ends early)"),
    (_complete_gzip_of_a_cut_nifti, "c1.nii.gz", f"is truncated ({352 + VOXELS.nbytes - 40} of "
                                                 f"{352 + VOXELS.nbytes} bytes of header and voxels)"),
    (_cut_nifti, "c1.nii", f"is truncated ({352 + VOXELS.nbytes - 4} of {352 + VOXELS.nbytes} bytes"),
    (_mhd_without_raw, "c1.mhd", "c1.raw (its ElementDataFile), which does not exist"),
    (_mhd_with_short_raw, "c1.raw", f"is truncated (100 of {VOXELS.nbytes} bytes of voxels)"),
    (_mha_cut, "c1.mha", f"is truncated ({VOXELS.nbytes - 4} of {VOXELS.nbytes} bytes of voxels)"),
    (_compressed_mha_cut, "c1.mha", "is truncated ("),
    (_nrrd_cut, "c1.nrrd", "is truncated or corrupt ("),
])
def test_truncated_or_corrupt_voxel_data_is_refused(tmp_path, spoil, culprit, expected):
    spoil(tmp_path)
    path = next(p for p in tmp_path.iterdir() if p.name.startswith("c1.") and p.suffix != ".raw")
    with pytest.raises(LandmarkError) as error:
        read_image(path)
    assert str(error.value).startswith(f"{tmp_path / culprit} ") and expected in str(error.value)


def test_itk_alone_reads_a_cut_nifti_as_zeros(tmp_path):
    """Why check_image_data exists: without it the cut half of the volume silently becomes 0."""
    _cut_nifti(tmp_path)
    assert sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "c1.nii")))[-1, -1, -1] == 0 != VOXELS[-1, -1, -1]
    with pytest.raises(LandmarkError, match="is truncated"):
        check_image_data(tmp_path / "c1.nii")


def _raw_dataset(root, spoil_image):
    """Dataset042_Img in nnUNet_raw: one case with a single landmark cube; ``spoil_image(path)`` damages its image."""
    folder = root / "nnUNet_raw" / "Dataset042_Img"
    (folder / "labelsTr").mkdir(parents=True)
    (folder / "imagesTr").mkdir()
    (folder / "dataset.json").write_text(json.dumps({"channel_names": {"0": "x"}, "labels": {"background": 0, "a": 1},
                                                     "numTraining": 1, "file_ending": ".nii.gz"}))
    seg = np.zeros((16, 16, 16), np.uint8)
    seg[6:9, 6:9, 6:9] = 1
    sitk.WriteImage(sitk.GetImageFromArray(seg), str(folder / "labelsTr" / "c1.nii.gz"))
    image = folder / "imagesTr" / "c1_0000.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.random.default_rng(0).normal(size=(16, 16, 16)).astype(np.float32)),
                    str(image))
    spoil_image(image)
    return image


def test_verify_dataset_integrity_reads_every_image_in_full(nnunet_dirs, fails_with):
    image = _raw_dataset(nnunet_dirs, lambda p: p.write_bytes(p.read_bytes()[:len(p.read_bytes()) // 2]))
    err = fails_with(plan_and_preprocess.main, ["-d", "42", "--verify_dataset_integrity"])
    assert err == f"error: {image} is truncated or corrupt (gzip stream ends early): copy or export it again"
    assert not list((nnunet_dirs / "nnUNet_preprocessed").iterdir())


def test_truncated_label_map_is_refused_without_the_integrity_flag(nnunet_dirs, fails_with):
    image = _raw_dataset(nnunet_dirs, lambda p: None)
    label = image.parent.parent / "labelsTr" / "c1.nii.gz"
    label.write_bytes(label.read_bytes()[:-20])
    err = fails_with(plan_and_preprocess.main, ["-d", "42"])
    assert err.startswith(f"error: {label} is truncated or corrupt")


# ---- prediction input folders -----------------------------------------------------------------------------------

def _inputs(tmp_path, *names):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in names:
        written(folder / name)
    return folder


def _refused(folder, message, n_channels=1):
    with pytest.raises(LandmarkError) as error:
        find_input_cases(str(folder), ".nii.gz", n_channels)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_input_folder_in_nnunet_naming_is_found(tmp_path):
    folder = _inputs(tmp_path, "b_0001.nii.gz", "a_0001.nii.gz", "b_0000.nii.gz", "a_0000.nii.gz")
    (folder / "notes.txt").write_text("other files are ignored")
    assert find_input_cases(str(folder), ".nii.gz", 2) == {
        case: [str(folder / f"{case}_000{c}.nii.gz") for c in (0, 1)] for case in ("a", "b")}


def test_input_not_in_channel_naming_is_named(tmp_path):
    folder = _inputs(tmp_path, "a_0000.nii.gz", "scan.nii.gz")
    _refused(folder, f"scan.nii.gz in {folder} is not in nnU-Net naming CASE_0000.nii.gz: rename it (the _0000 "
                     f"suffix is the channel)")


@pytest.mark.parametrize("state", ["missing", "file"])
def test_input_folder_that_is_no_folder(tmp_path, state):
    folder = tmp_path / "in"
    if state == "file":
        folder.write_text("")
    _refused(folder, f"input folder {folder} {'does not exist' if state == 'missing' else 'is a file, not a folder'}")


def test_dangling_input_symlink_is_named(tmp_path):
    folder = _inputs(tmp_path, "a_0000.nii.gz")
    (folder / "b_0000.nii.gz").symlink_to(tmp_path / "gone.nii.gz")
    _refused(folder, f"{folder / 'b_0000.nii.gz'} is a broken symbolic link (to {tmp_path / 'gone.nii.gz'})")


def test_input_channels_must_be_the_models(tmp_path):
    folder = _inputs(tmp_path, "a_0000.nii.gz", "a_0002.nii.gz")
    _refused(folder, "case 'a' in", n_channels=2)
    _refused(folder, "a_0000.nii.gz, a_0001.nii.gz (found a_0000.nii.gz, a_0002.nii.gz)", n_channels=2)


def test_input_with_another_ending_gets_a_hint(tmp_path):
    folder = _inputs(tmp_path, "a_0000.nii")
    _refused(folder, f"no '*_0000.nii.gz' images in {folder} (it holds a_0000.nii, ...: the model reads .nii.gz files)")


@pytest.mark.parametrize("spoil, message", [
    (lambda p: sitk.WriteImage(sitk.Image(5, 5, sitk.sitkFloat32), str(p)), "is a 2D image with 1 component(s)"),
    (lambda p: sitk.WriteImage(sitk.Image([5, 5, 5, 2], sitk.sitkFloat32), str(p)), "is a 4D image"),
    (lambda p: sitk.WriteImage(sitk.Image([5, 5, 5], sitk.sitkVectorFloat32, 3), str(p)), "with 3 component(s)"),
    (lambda p: p.write_bytes(p.read_bytes()[:len(p.read_bytes()) // 2]), "is truncated or corrupt"),
])
def test_input_images_are_checked_before_prediction(tmp_path, spoil, message):
    folder = _inputs(tmp_path, "a_0000.nii.gz", "b_0000.nii.gz")
    spoil(folder / "b_0000.nii.gz")
    _refused(folder, f"{folder / 'b_0000.nii.gz'} ")
    _refused(folder, message)
