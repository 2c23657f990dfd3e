"""Detection of absent landmarks: does the prediction say "present" exactly where the landmark is there?"""
from typing import Dict, Optional

DEFINITION = ("Detection counts (case, landmark) pairs whose presence both prediction and ground truth state: "
              "TP predicted present and present, FP predicted present but absent, FN predicted absent but present; "
              "precision = TP/(TP+FP), recall = TP/(TP+FN). MRE covers pairs present in both.")


def _rates(counts: dict) -> dict:
    tp, fp, fn = counts["tp"], counts["fp"], counts["fn"]
    return {**counts, "precision": tp / (tp + fp) if tp + fp else None, "recall": tp / (tp + fn) if tp + fn else None}


def detection_summary(predicted: Dict[str, Dict[str, bool]], truth: Dict[str, Dict[str, bool]]) -> Optional[dict]:
    """Pooled and per-landmark counts, precision and recall; None when nothing was absent on either side (then
    detection says nothing beyond MRE)."""
    pairs = [(name, predicted[c][name], truth[c][name]) for c in predicted if c in truth
             for name in predicted[c] if name in truth[c]]
    if all(p and t for _, p, t in pairs):
        return None
    per_landmark = {}
    for name, p, t in pairs:
        counts = per_landmark.setdefault(name, {"tp": 0, "fp": 0, "fn": 0, "tn": 0})
        counts["tp" if p and t else "fp" if p else "fn" if t else "tn"] += 1
    pooled = {k: sum(c[k] for c in per_landmark.values()) for k in ("tp", "fp", "fn", "tn")}
    return {**_rates(pooled), "per_landmark": {n: _rates(c) for n, c in sorted(per_landmark.items())},
            "definition": DEFINITION}


def format_detection(detection: dict) -> str:
    def pct(v):
        return "  n/a " if v is None else f"{100 * v:5.1f}%"
    width = max([len("landmark")] + [len(n) for n in detection["per_landmark"]])
    lines = [f"Detection: precision {pct(detection['precision'])}  recall {pct(detection['recall'])}  "
             f"(TP {detection['tp']}, FP {detection['fp']}, FN {detection['fn']}, TN {detection['tn']})",
             f"{'landmark':<{width}}  precision  recall   TP  FP  FN  TN"]
    for name, c in detection["per_landmark"].items():
        lines.append(f"{name:<{width}}  {pct(c['precision']):>9}  {pct(c['recall']):>6}  {c['tp']:>3} {c['fp']:>3} "
                     f"{c['fn']:>3} {c['tn']:>3}")
    return "\n".join(lines)
