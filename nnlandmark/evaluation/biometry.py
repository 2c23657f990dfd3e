"""Biometry: how wrong a clinical distance between two landmarks comes out, |‖â−b̂‖ − ‖a−b‖| in world mm.

World positions already carry per-axis spacing and direction, so plain Euclidean distances are correct
for anisotropic and oblique images (docs/design.md, "Metrics").
"""
import csv
from pathlib import Path
from typing import List, NamedTuple, Optional, Sequence

import numpy as np

from nnlandmark.evaluation.metrics import Landmarks
from nnlandmark.io.atomic import read_json
from nnlandmark.landmark_set import Pair, biometry_pairs, checked_pairs

DEFINITION = ("Biometry error for a landmark pair (a, b) is |‖â − b̂‖ − ‖a − b‖| in world mm, per case where "
              "both landmarks are in prediction and ground truth; mean ± std (ddof 0) per pair and pooled.")


class BiometryError(NamedTuple):
    pair: str
    case: str
    true_mm: float
    pred_mm: float
    error_mm: float


def pair_key(pair: Pair) -> str:
    return f"{pair[0]}:{pair[1]}"


def parse_pairs(texts: Sequence[str]) -> List[Pair]:
    """Command-line ``a:b c:d`` -> [("a", "b"), ("c", "d")]."""
    return checked_pairs([t.split(":") for t in texts], "--pairs")


def pairs_from_dataset(folder) -> List[Pair]:
    """``biometry_pairs`` of a raw dataset's dataset.json ([] when the key or the file is absent)."""
    path = Path(folder) / "dataset.json"
    return biometry_pairs(read_json(path), str(path)) if path.is_file() else []


def biometry_errors(pred: Landmarks, gt: Landmarks, pairs: Sequence[Pair]) -> List[BiometryError]:
    """One record per (pair, case) with both landmarks in both prediction and ground truth."""
    records = []
    for a, b in pairs:
        for case in sorted(set(pred) & set(gt)):
            p, g = pred[case], gt[case]
            if not all(n in p and n in g for n in (a, b)):
                continue
            true = float(np.linalg.norm(np.asarray(g[a], float) - np.asarray(g[b], float)))
            est = float(np.linalg.norm(np.asarray(p[a], float) - np.asarray(p[b], float)))
            records.append(BiometryError(pair_key((a, b)), case, true, est, abs(est - true)))
    return records


def _stats(errors) -> dict:
    e = np.asarray(errors, float)
    if e.size == 0:
        return {"mean_mm": None, "std_mm": None, "n": 0}
    return {"mean_mm": float(e.mean()), "std_mm": float(e.std(ddof=0)), "n": int(e.size)}


def summarize_biometry(records: Sequence[BiometryError], pairs: Sequence[Pair]) -> dict:
    """Per-pair and pooled mean ± std, for the summary's "biometry" entry."""
    return {"pairs": {pair_key(p): _stats([r.error_mm for r in records if r.pair == pair_key(p)]) for p in pairs},
            "pooled": _stats([r.error_mm for r in records]),
            "definition": DEFINITION}


def write_biometry_csv(records: Sequence[BiometryError], out_dir) -> Path:
    """biometry.csv: pair,case,true_mm,pred_mm,error_mm."""
    path = Path(out_dir) / "biometry.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(BiometryError._fields)
        w.writerows(records)
    return path


def format_biometry(bio: dict) -> Optional[str]:
    """Printed table: one row per pair, then pooled."""
    if not bio["pairs"]:
        return None
    rows = list(bio["pairs"].items()) + [("pooled", bio["pooled"])]
    width = max(len("pair"), *(len(k) for k, _ in rows))
    lines = [f"{'pair':<{width}}  {'n':>5}  {'error ± std (mm)':>18}"]
    for key, s in rows:
        value = "-" if s["n"] == 0 else f"{s['mean_mm']:>8.3f} ± {s['std_mm']:.3f}"
        lines.append(f"{key:<{width}}  {s['n']:>5}  {value}")
    return "\n".join(lines)
