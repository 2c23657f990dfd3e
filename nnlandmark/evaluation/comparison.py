"""Several methods against one ground truth, on the same (case, landmark) pairs, in the paper's Table 4 layout."""
import csv
from pathlib import Path
from typing import Dict, List, Mapping, Sequence

import numpy as np

from nnlandmark.errors import LandmarkError
from nnlandmark.evaluation.metrics import Landmarks, RadialError, radial_errors

TABLE_SDR = (2.0, 3.0, 4.0)
COLUMNS = ["method", "n_cases", "n_pairs", "mre_mm", "std_mm"] + [f"sdr_{t:g}mm" for t in TABLE_SDR]


def method_names(folders: Sequence) -> List[str]:
    """Folder names, or the paths as given when two folders share a name."""
    names = [Path(f).name for f in folders]
    return names if len(set(names)) == len(names) else [str(f) for f in folders]


def common_pairs(methods: Mapping[str, Landmarks], gt: Landmarks) -> Dict[str, set]:
    """{case: landmark names} present in the ground truth and in every method, so all are judged alike."""
    cases = set(gt).intersection(*methods.values())
    return {c: set(gt[c]).intersection(*(m[c] for m in methods.values())) for c in sorted(cases)}


def _restrict(points: Landmarks, keep: Mapping[str, set]) -> dict:
    return {c: {n: points[c][n] for n in names} for c, names in keep.items()}


def compare(methods: Mapping[str, Landmarks], gt: Landmarks) -> Dict[str, List[RadialError]]:
    """Radial errors of each method on the intersection; LandmarkError if the intersection is empty."""
    keep = common_pairs(methods, gt)
    if not any(keep.values()):
        raise LandmarkError("the prediction folders and the ground truth share no (case, landmark) pair")
    return {name: radial_errors(_restrict(pred, keep), _restrict(gt, keep)) for name, pred in methods.items()}


def comparison_rows(errors: Mapping[str, List[RadialError]]) -> List[dict]:
    rows = []
    for name, records in errors.items():
        e = np.array([r.error_mm for r in records], float)
        row = {"method": name, "n_cases": len({r.case for r in records}), "n_pairs": len(records),
               "mre_mm": float(e.mean()), "std_mm": float(e.std(ddof=0))}
        row.update({f"sdr_{t:g}mm": float(100.0 * np.mean(e <= t)) for t in TABLE_SDR})
        rows.append(row)
    return rows


def format_comparison(rows: Sequence[dict]) -> str:
    """Method × MRE ± std (mm), SDR@2/3/4 mm (%)."""
    width = max(len("method"), *(len(r["method"]) for r in rows))
    sdr = [f"sdr_{t:g}mm" for t in TABLE_SDR]
    lines = [f"{'method':<{width}}  {'MRE ± std (mm)':>17}  " + "  ".join(f"{'SDR@' + f'{t:g}':>8}" for t in TABLE_SDR)]
    for r in rows:
        lines.append(f"{r['method']:<{width}}  {r['mre_mm']:>7.2f} ± {r['std_mm']:<7.2f}  "
                     + "  ".join(f"{r[k]:>7.2f}%" for k in sdr))
    return "\n".join(line.rstrip() for line in lines)


def write_comparison(rows: Sequence[dict], out_dir) -> Path:
    """comparison.csv with COLUMNS."""
    path = Path(out_dir) / "comparison.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)
    return path
