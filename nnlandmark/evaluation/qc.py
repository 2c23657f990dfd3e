"""QC overlays: three orthogonal slices through each landmark with prediction and ground truth marked.

The layout is fixed in pixels so a marker's position is predictable: one row per landmark, a HEADER-pixel text band,
then three PANEL×PANEL cells (axial, coronal, sagittal in the image's voxel grid; of a 2D image, a volume of one
slice, the axial cell alone). Each slice is fitted into its cell with physical aspect (spacing) and centred. Axial:
horizontal i, vertical j downwards; coronal: i, k upwards; sagittal: j, k upwards. Prediction = red cross, ground
truth = green circle; slices pass through the ground truth, the prediction is drawn at its in-plane position on
them. A calibrated prediction's radius is the dashed red circle where its ball meets the slice.
"""
import glob
from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk
from matplotlib.figure import Figure
from matplotlib.patches import Ellipse
from tqdm import tqdm

from nnlandmark.errors import LandmarkError
from nnlandmark.evaluation.instances import instance_points, with_instance_rows
from nnlandmark.geometry import Geometry, volume_in_itk_order
from nnlandmark.io.images import read_image
from nnlandmark.io.predictions import read_error_estimates, read_instances, read_predictions

PANEL, HEADER, DPI = 200, 24, 100
PRED_STYLE = dict(marker="x", color=(1.0, 0.0, 0.0), markersize=10, markeredgewidth=2, linestyle="none")
GT_STYLE = dict(marker="o", markerfacecolor="none", markeredgecolor=(0.0, 1.0, 0.0), markersize=12,
                markeredgewidth=2, linestyle="none")
RADIUS_STYLE = dict(fill=False, edgecolor=(1.0, 0.0, 0.0), linestyle="--", linewidth=1)
# (name, fixed ITK axis, horizontal axis, vertical axis, vertical axis points up)
VIEWS = (("axial", 2, 0, 1, False), ("coronal", 1, 0, 2, True), ("sagittal", 0, 1, 2, True))


def find_case_image(case: str, folders: Sequence, ending: Optional[str] = None) -> Path:
    """``CASE_0000<ending>`` in the first folder that has it (nnU-Net naming; first channel only)."""
    for folder in folders:
        pattern = f"{glob.escape(case)}_0000{ending or '.*'}"
        hits = sorted(p for p in Path(folder).glob(pattern) if p.is_file())
        if hits:
            return hits[0]
    raise LandmarkError(f"no image {case}_0000{ending or '.*'} in {', '.join(str(f) for f in folders)} for QC")


def read_volume(path) -> Tuple[np.ndarray, Geometry]:
    """ITK-ordered (i, j, k) intensity volume and its geometry (a 2D image as a volume of one slice)."""
    image = read_image(path, planar=True)
    return volume_in_itk_order(sitk.GetArrayFromImage(image)).astype(np.float32), Geometry.of_image(image)


def _slice(volume: np.ndarray, axis: int, index: float) -> Tuple[np.ndarray, int]:
    k = int(np.clip(np.round(index), 0, volume.shape[axis] - 1))
    return np.take(volume, k, axis=axis), k


def render_case(volume: np.ndarray, geometry: Geometry, pred: Mapping, gt: Mapping, path, title: str = "",
                radius: Optional[Mapping[str, float]] = None) -> Path:
    """Write the QC PNG for one case; slices pass through the ground truth (else the prediction); ``radius``
    {name: mm} draws each prediction's ball where it meets the slice."""
    radius = radius or {}
    names = sorted(set(pred) | set(gt))
    if not names:
        raise LandmarkError(f"no landmark to show in the QC picture {path}")
    lo, hi = np.percentile(volume, [0.5, 99.5])
    hi = hi if hi > lo else lo + 1.0
    views = [view for view in VIEWS if volume.shape[view[2]] > 1 and volume.shape[view[3]] > 1]  # 2D: axial only
    width, height = max(len(views), 2) * PANEL, len(names) * (PANEL + HEADER)   # room for the header text
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, facecolor="black")
    for row, name in enumerate(names):
        p_idx = geometry.world_to_index(pred[name]) if name in pred else None
        g_idx = geometry.world_to_index(gt[name]) if name in gt else None
        centre = g_idx if g_idx is not None else p_idx
        top = row * (PANEL + HEADER)
        text = f"{title}  {name}"
        if p_idx is not None and g_idx is not None:
            text += f"  error {float(np.linalg.norm(np.asarray(pred[name]) - np.asarray(gt[name]))):.2f} mm"
        text += "  (red x: prediction, green o: ground truth)" if row == 0 else ""
        fig.text(4 / width, 1 - (top + HEADER / 2) / height, text, color="white", fontsize=9, va="center")
        for col, (view, fixed, u, v, up) in enumerate(views):
            plane, k = _slice(volume, fixed, centre[fixed])   # plane[u, v]: the two remaining axes in order
            w_mm, h_mm = volume.shape[u] * geometry.spacing[u], volume.shape[v] * geometry.spacing[v]
            scale = PANEL / max(w_mm, h_mm)
            w, h = w_mm * scale, h_mm * scale
            left, ax_top = col * PANEL + (PANEL - w) / 2, top + HEADER + (PANEL - h) / 2
            ax = fig.add_axes((left / width, 1 - (ax_top + h) / height, w / width, h / height))
            nu, nv = volume.shape[u], volume.shape[v]
            extent = (-0.5, nu - 0.5, -0.5, nv - 0.5) if up else (-0.5, nu - 0.5, nv - 0.5, -0.5)
            ax.imshow(plane.T, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest", aspect="auto",
                      origin="lower" if up else "upper", extent=extent)
            ax.set_xlim(-0.5, nu - 0.5)
            ax.set_ylim(*((-0.5, nv - 0.5) if up else (nv - 0.5, -0.5)))
            ax.set_axis_off()
            ax.text(0.02, 0.02, f"{view} {'ijk'[fixed]}={k}", color="yellow", fontsize=7, transform=ax.transAxes)
            if g_idx is not None:
                ax.plot([g_idx[u]], [g_idx[v]], **GT_STYLE)
            if p_idx is not None:
                ax.plot([p_idx[u]], [p_idx[v]], **PRED_STYLE)
                _draw_ball(ax, p_idx, radius.get(name), geometry.spacing, k, fixed, u, v)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, facecolor="black")
    return path


def _draw_ball(ax, centre, radius_mm: Optional[float], spacing, k: int, fixed: int, u: int, v: int) -> None:
    """The circle where a ball of ``radius_mm`` around ``centre`` (ITK index) meets slice ``k`` of axis ``fixed``."""
    if radius_mm is None:
        return
    offset_mm = (centre[fixed] - k) * spacing[fixed]
    if abs(offset_mm) >= radius_mm:
        return
    r = float(np.sqrt(radius_mm ** 2 - offset_mm ** 2))
    ax.add_patch(Ellipse((centre[u], centre[v]), 2 * r / spacing[u], 2 * r / spacing[v], **RADIUS_STYLE))


def worst_cases(per_case: Mapping[str, float], n: int) -> list:
    """The n cases with the largest per-case MRE (ties by name), the ones worth looking at first."""
    return sorted(per_case, key=lambda c: (-per_case[c], c))[:max(0, n)]


def qc_images(cases: Sequence[str], image_folders: Sequence, ending: Optional[str] = None) -> Dict[str, Path]:
    """{case: CASE_0000<ending> in image_folders}, looked up before anything is written, so that a missing image
    stops a run before its summary is written."""
    return {case: find_case_image(case, image_folders, ending) for case in cases}


def write_qc(images: Mapping[str, Path], pred: Mapping, gt: Mapping, out_dir,
             per_case: Optional[Mapping[str, float]] = None, estimates: Optional[Mapping] = None) -> list:
    """out_dir/qc/CASE.png for each case of ``images`` (see qc_images), with the radius of each landmark that
    ``estimates`` ({case: {name: (expected_error_mm, radius_mm)}}, io.predictions.read_error_estimates) has; if one
    fails, the pictures of this call are removed again, so a failed run leaves no partial set."""
    written = []
    try:
        for case, image in tqdm(images.items(), desc="QC pictures", disable=None):
            volume, geometry = read_volume(image)
            title = case + (f"  case MRE {per_case[case]:.2f} mm" if per_case and case in per_case else "")
            radius = {name: r for name, (_, r) in (estimates or {}).get(case, {}).items()}
            written.append(render_case(volume, geometry, pred.get(case, {}), gt.get(case, {}),
                                       Path(out_dir) / "qc" / f"{case}.png", title, radius))
    except LandmarkError:
        for path in written:
            path.unlink()
        raise
    return written


def qc_for_predictions(pred_dir, image_dir, ending: Optional[str] = None, cases: Optional[Sequence[str]] = None) -> list:
    """nnLandmark_predict --qc: PRED_DIR/qc/CASE.png for the given (default: all) predicted cases, no ground truth;
    ``image_dir`` a folder, or {case: image path}."""
    pred = read_predictions(pred_dir)[0]
    images = dict(image_dir) if isinstance(image_dir, Mapping) else \
        qc_images(sorted(pred) if cases is None else list(cases), [image_dir], ending)
    pred = with_instance_rows(pred, {}, instance_points(read_instances(pred_dir)), {})[0]
    return write_qc(images, pred, {}, pred_dir, estimates=read_error_estimates(pred_dir)[1])
