"""Human table and machine files (JSON, CSV) from one summary, each stating the metric definitions."""
import csv
import json
from pathlib import Path
from typing import List

_LEFT_OUT = [("cases_only_in_prediction", "case(s) only in the prediction"),
             ("cases_only_in_ground_truth", "case(s) only in the ground truth"),
             ("landmarks_only_in_prediction", "landmark name(s) only in the prediction"),
             ("landmarks_only_in_ground_truth", "landmark name(s) only in the ground truth"),
             ("missing_in_prediction", "ground-truth landmark(s) not predicted"),
             ("missing_in_ground_truth", "predicted landmark(s) absent from the ground truth")]


def warnings(summary: dict) -> List[str]:
    """One line per kind of mismatch, so users know the numbers cover only the intersection."""
    lines = []
    for key, what in _LEFT_OUT:
        items = summary.get(key) or []
        if items:
            shown = ", ".join(items[:5]) + (f", ... ({len(items) - 5} more)" if len(items) > 5 else "")
            lines.append(f"{len(items)} {what}, excluded from the metrics: {shown}")
    return lines


def format_table(summary: dict) -> str:
    """Plain-text report: overall statistics, SDR, per-landmark rows, then the definitions (of a dataset of
    multi-instance classes only, its definition: the instances have their own table, ``format_instances``)."""
    s = summary
    if "mre_mm" not in s:
        return f"Evaluated {s['n_cases']} cases. " + " ".join(s["definitions"].values())
    lines = [f"Evaluated {s['n_pairs']} (case, landmark) pairs: {s['n_cases']} cases, {s['n_landmarks']} landmarks",
             f"MRE {s['mre_mm']:.3f} ± {s['std_mm']:.3f} mm   median {s['median_mm']:.3f} mm   "
             f"max {s['max_mm']:.3f} mm",
             "SDR  " + "   ".join(f"@{t} mm: {p:.2f} %" for t, p in s["sdr"].items()),
             ""]
    width = max([len("landmark")] + [len(n) for n in s["per_landmark"]])
    lines.append(f"{'landmark':<{width}}  {'n':>5}  {'MRE ± std (mm)':>18}")
    for name, row in s["per_landmark"].items():
        lines.append(f"{name:<{width}}  {row['n']:>5}  {row['mre_mm']:>8.3f} ± {row['std_mm']:<7.3f}")
    lines += ["", "Definitions: " + " ".join(s["definitions"].values())]
    return "\n".join(line.rstrip() for line in lines)


def write_summary(summary: dict, out_dir) -> List[Path]:
    """summary.json, per_landmark.csv (landmark,n,mre_mm,std_mm) and per_case.csv (case,mre_mm) in out_dir (the
    tables only where there are single landmarks); the files written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "summary.json", "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2, ensure_ascii=False)
    if "mre_mm" not in summary:
        return [out_dir / "summary.json"]
    with open(out_dir / "per_landmark.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["landmark", "n", "mre_mm", "std_mm"])
        w.writerows([n, r["n"], r["mre_mm"], r["std_mm"]] for n, r in summary["per_landmark"].items())
    with open(out_dir / "per_case.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["case", "mre_mm"])
        w.writerows([c, m] for c, m in summary["per_case"].items())
    return [out_dir / name for name in ("summary.json", "per_landmark.csv", "per_case.csv")]
