"""Images and nnU-Net's folders of them: headers read without pixels, SimpleITK images as nnU-Net arrays, input
folders of CASE_0000 files, and the case properties nnU-Net's preprocessing keeps next to each case.

Every image goes through ``read_image_header`` (3D, or 2D where a 2D dataset allows it; scalar; a grid ITK can place
voxels with) and, when its voxels matter, ``check_image_data``: ITK fills a cut-off NIfTI with zeros without a
word."""
import gzip
import os
import re
import zlib
from glob import glob
from os.path import basename, dirname, isdir, isfile, join
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import SimpleITK as sitk
from batchgenerators.utilities.file_and_folder_operations import load_pickle
from nnunetv2.utilities.utils import create_paths_fn, get_identifiers_from_splitted_dataset_folder
from tqdm import tqdm

from nnlandmark.errors import LandmarkError
from nnlandmark.geometry import (SLICE_THICKNESS_MM, as_volume, axes_defect, check_grid, numpy_order,
                                sheared_grid_error, sitk_stuff, volume_direction)

# the header fields that hold spacing and direction, named in messages so that the user knows what to fix
_HEADER_FIELDS = {(".mha", ".mhd"): ("'ElementSpacing'", "'TransformMatrix'"),
                  (".nrrd", ".nhdr"): ("'space directions' (or 'spacings')", "'space directions'"),
                  (".nii", ".nii.gz", ".hdr", ".img"): ("pixdim", "sform/qform")}
_CHUNK = 1 << 20  # bytes decompressed at a time
RASTER_ENDINGS = (".png", ".jpg", ".jpeg", ".bmp")   # 2D formats without a pixel spacing (ITK reads 1 mm)
IMAGE_ENDINGS = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".tif", ".tiff") + RASTER_ENDINGS


def _itk_reason(error: RuntimeError) -> str:
    """ITK's message without the source file, line and object address that precede it (of teem's NRRD reader's
    chain of messages, the last: the one that says what went wrong)."""
    text = " ".join(str(error).split())
    for marker in ("sitk::ERROR: ", "ITK ERROR: ", "[nrrd] "):
        text = text.rsplit(marker, 1)[-1]
    return re.sub(r"^\w+\(0x[0-9a-f]+\): ", "", text)[:300]


def _header_fields(path) -> Tuple[str, str]:
    name = str(path).lower()
    for endings, fields in _HEADER_FIELDS.items():
        if name.endswith(endings):
            return fields
    return "spacing", "direction"


def _refuse_broken_link(path) -> None:
    """A link whose target is gone, named as such rather than as a missing or unreadable file."""
    if os.path.islink(path) and not os.path.exists(path):
        raise LandmarkError(f"{path} is a broken symbolic link (to {os.readlink(path)}): fix or remove it")


def read_image_header(path: str, planar: bool = False) -> sitk.ImageFileReader:
    """The header of a 3D scalar image with a usable grid (no pixels read), or a LandmarkError naming the file;
    ``planar``: a 2D scalar image too (the images of a 2D dataset; ``geometry.as_volume`` makes it a volume)."""
    _refuse_broken_link(path)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as e:
        if "No orthonormal definition found" in str(e):  # NIfTI with a sheared sform and no qform
            raise sheared_grid_error(path) from None
        if str(path).lower().endswith(".gz"):
            _gzip_size(path)  # a broken stream is named as such, not as an unknown format
        raise LandmarkError(f"cannot read image {path}: {_itk_reason(e)}") from None
    dimensions = (2, 3) if planar else (3,)
    if reader.GetDimension() not in dimensions or reader.GetNumberOfComponents() != 1:
        colour = " (save colour images as greyscale)" if reader.GetNumberOfComponents() in (3, 4) else ""
        raise LandmarkError(f"{path} is a {reader.GetDimension()}D image with {reader.GetNumberOfComponents()} "
                            f"component(s); nnlandmark needs {' or '.join(f'{d}D' for d in dimensions)} scalar images "
                            f"(one file per channel){colour}")
    check_grid([*reader.GetSpacing(), SLICE_THICKNESS_MM][:3], volume_direction(reader.GetDirection()), str(path),
               *_header_fields(path))
    if reader.HasMetaDataKey("sform_code") and int(reader.GetMetaData("sform_code")) > 0:
        # ITK silently falls back to the qform when the sform is sheared; other tools place voxels by the sform
        sform = [[float(v) for v in reader.GetMetaData(f"srow_{axis}").split()[:3]] for axis in "xyz"]
        if axes_defect(sform) == "sheared":
            raise sheared_grid_error(path)
    return reader


def _bytes_per_voxel(header: sitk.ImageFileReader) -> int:
    return sitk.GetArrayFromImage(sitk.Image([1, 1, 1], header.GetPixelID())).itemsize


def _truncated(path, size: int, expected: int) -> LandmarkError:
    return LandmarkError(f"{path} is truncated ({size} of {expected} bytes of header and voxels): copy or export it "
                         f"again")


def _gzip_size(path) -> int:
    """Bytes of the whole decompressed stream, read chunk by chunk (the file is never held twice)."""
    size = 0
    try:
        with gzip.open(path, "rb") as stream:
            while chunk := stream.read(_CHUNK):
                size += len(chunk)
    except EOFError:
        raise LandmarkError(f"{path} is truncated or corrupt (gzip stream ends early): copy or export it again") \
            from None
    except (gzip.BadGzipFile, zlib.error) as e:
        raise LandmarkError(f"{path} is truncated or corrupt (gzip: {e}): copy or export it again") from None
    return size


def _check_metaimage_data(path, header: sitk.ImageFileReader) -> None:
    """MetaImage keeps its voxels after the 'ElementDataFile = LOCAL' line or in the one file that line names; ITK
    reports a short or missing one as 'No such file or directory' about the header."""
    fields, data_start = {}, 0
    with open(path, "rb") as f:
        for line in f:
            data_start += len(line)
            key, _, value = line.decode("latin-1").partition("=")
            fields[key.strip()] = value.strip()
            if key.strip() == "ElementDataFile":
                break
    data_file = fields.get("ElementDataFile", "")
    if data_file == "LOCAL":
        where, size = path, os.path.getsize(path) - data_start
    elif data_file and data_file != "LIST" and "%" not in data_file and " " not in data_file:
        where = join(dirname(str(path)), data_file)
        if not isfile(where):
            raise LandmarkError(f"{path} keeps its voxels in {where} (its ElementDataFile), which does not exist: "
                                f"copy that file next to {basename(str(path))}")
        size = os.path.getsize(where)
    else:
        return  # slice lists and patterns: ITK checks them itself
    if fields.get("BinaryData", "True").lower() != "true" or int(fields.get("HeaderSize", 0)) < 0:
        return
    if fields.get("CompressedData", "False").lower() == "true":
        if "CompressedDataSize" not in fields:
            return
        expected = int(fields["CompressedDataSize"])
    else:
        expected = int(np.prod(header.GetSize())) * _bytes_per_voxel(header)
    expected += max(int(fields.get("HeaderSize", 0)), 0)
    if size < expected:
        raise LandmarkError(f"{where} is truncated ({size} of {expected} bytes of voxels): copy or export it again")


def check_image_data(path, header: Optional[sitk.ImageFileReader] = None) -> None:
    """Refuse an image whose voxel data is cut short or corrupt: gzip streams are decompressed in full, other files
    measured against what their header promises. ITK would fill a short NIfTI with zeros."""
    header = header or read_image_header(path)
    name = str(path).lower()
    if name.endswith((".mha", ".mhd")):
        _check_metaimage_data(path, header)
        return
    expected = None
    if header.HasMetaDataKey("vox_offset") and name.endswith((".nii", ".nii.gz")):
        expected = (int(float(header.GetMetaData("vox_offset")))
                    + int(np.prod(header.GetSize())) * int(header.GetMetaData("bitpix")) // 8)
    if name.endswith(".gz"):
        size = _gzip_size(path)
    elif expected is not None:
        size = os.path.getsize(path)
    else:
        return
    if expected is not None and size < expected:
        raise _truncated(path, size, expected)


def read_image(path, planar: bool = False) -> sitk.Image:
    """A whole 3D scalar image whose header and voxel data were checked, or a LandmarkError naming the file;
    ``planar``: a 2D image too, as a volume of one slice (``geometry.as_volume``)."""
    header = read_image_header(path, planar)
    check_image_data(path, header)
    try:
        return as_volume(header.Execute())
    except RuntimeError as e:  # the header was fine, so the voxels are not
        raise LandmarkError(f"{path} is truncated or corrupt ({_itk_reason(e)}): copy or export it again") from None


def images_to_nnunet_array(images: Sequence[sitk.Image]) -> Tuple[np.ndarray, dict]:
    """SimpleITK image(s) -> (C, z, y, x) float32 array and properties, exactly as nnU-Net's SimpleITKIO."""
    reference = images[0]
    data = np.stack([sitk.GetArrayFromImage(i) for i in images]).astype(np.float32)
    return data, {'sitk_stuff': sitk_stuff(reference), 'spacing': numpy_order(reference.GetSpacing()).tolist()}


def find_input_cases(folder: str, file_ending: str, n_channels: int, planar: bool = False) -> Dict[str, List[str]]:
    """CASE_0000<ending>, CASE_0001<ending>, ... -> {CASE: [files]}. Every file is checked here (naming, header,
    voxel data), so that a bad input fails before the first prediction instead of being skipped or read as zeros;
    ``planar``: 2D images are accepted (a model of 2D images)."""
    if not isdir(folder):
        state = "is a file, not a folder" if os.path.exists(folder) else "does not exist"
        raise LandmarkError(f"input folder {folder} {state} (expected CASE_0000{file_ending} images in it)")
    names = sorted(os.listdir(folder))
    if planar and not any(n.endswith(file_ending) for n in names):
        found = {e for n in names for e in IMAGE_ENDINGS if n.endswith(e)}
        file_ending = found.pop() if len(found) == 1 else file_ending   # e.g. a folder of CASE_0000.png
    for name in names:
        if name.endswith(file_ending):
            _refuse_broken_link(join(folder, name))
    files = [n for n in names if n.endswith(file_ending) and isfile(join(folder, n))]
    if not files:
        others = [n for n in names if isfile(join(folder, n)) and not n.startswith(".")]
        hint = f" (it holds {others[0]}, ...: the model reads {file_ending} files)" if others else ""
        raise LandmarkError(f"no '*_0000{file_ending}' images in {folder}{hint}")
    in_naming = re.compile(r".+_\d{4}" + re.escape(file_ending))
    for name in files:
        if not in_naming.fullmatch(name):
            raise LandmarkError(f"{name} in {folder} is not in nnU-Net naming CASE_0000{file_ending}: rename it (the "
                                f"_0000 suffix is the channel)")
    cases = {}
    for case in get_identifiers_from_splitted_dataset_folder(folder, file_ending):
        paths = create_paths_fn(folder, files, file_ending, str(case))
        expected = [join(folder, f"{case}_{c:04d}{file_ending}") for c in range(n_channels)]
        if paths != expected:
            raise LandmarkError(f"case '{case}' in {folder} has {len(paths)} channel file(s), the model expects "
                                f"{n_channels}: {', '.join(basename(p) for p in expected)} (found "
                                f"{', '.join(basename(p) for p in paths)})")
        cases[str(case)] = paths
    for path in tqdm([p for paths in cases.values() for p in paths], desc="checking input images", leave=False,
                     disable=None):
        check_image_data(path, read_image_header(path, planar))
    return cases


def input_cases(source: Union[str, Sequence[str]], file_ending: str, n_channels: int,
                planar: bool = False) -> Dict[str, List[str]]:
    """{CASE: [files]} of a folder in nnU-Net naming (find_input_cases) or of a list of image files, one case each
    (CASE<ending> or CASE_0000<ending>; only for single-channel models), every file checked likewise. ``planar`` (a
    model of 2D images): 2D images too, of any IMAGE_ENDINGS (PNG ...) where the folder or list has no other."""
    paths = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    if len(paths) == 1 and isdir(paths[0]):
        return find_input_cases(str(paths[0]), file_ending, n_channels, planar)
    if n_channels != 1:
        raise LandmarkError(f"a list of files gives one image per case, but the model expects {n_channels} channels: "
                            f"give a folder of CASE_0000{file_ending} ... CASE_{n_channels - 1:04d}{file_ending} files")
    cases = {}
    for path in map(str, paths):
        _refuse_broken_link(path)
        if not isfile(path):
            raise LandmarkError(f"input {path} {'is a folder' if isdir(path) else 'does not exist'}: give one folder, "
                                f"or image files")
        ending = next((e for e in (file_ending, *(IMAGE_ENDINGS if planar else ())) if path.endswith(e)), None)
        if ending is None:
            raise LandmarkError(f"input {path} is not a {file_ending} file, which the model reads")
        case = re.sub(r"_0000$", "", basename(path)[:-len(ending)])
        if case in cases:
            raise LandmarkError(f"inputs {cases[case][0]} and {path} are both case '{case}'")
        cases[case] = [path]
    for path in tqdm([p[0] for p in cases.values()], desc="checking input images", leave=False, disable=None):
        check_image_data(path, read_image_header(path, planar))
    return dict(sorted(cases.items()))


def preprocessed_case_properties(preprocessed_folder: str) -> Dict[str, dict]:
    """{case: properties} that nnU-Net's preprocessing wrote as CASE.pkl (geometry, crop, ``class_locations``)."""
    return {basename(p)[:-len('.pkl')]: load_pickle(p) for p in sorted(glob(join(preprocessed_folder, '*.pkl')))}
