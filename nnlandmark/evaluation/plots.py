"""Summary pictures for a report: error box plot per landmark and SDR-vs-radius curve (headless Agg)."""
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure  # a bare Figure renders with Agg: no display, no pyplot state

from nnlandmark.evaluation.metrics import RadialError


def errors_boxplot(errors: Sequence[RadialError], path) -> Path:
    """One box of radial errors (mm) per landmark, so outlying landmarks stand out."""
    names = sorted({r.name for r in errors})
    data = [[r.error_mm for r in errors if r.name == n] for n in names]
    fig = Figure(figsize=(max(4.0, 0.5 * len(names) + 2), 4), dpi=100)
    ax = fig.add_subplot()
    ax.boxplot(data)
    ax.set_xticks(range(1, len(names) + 1))
    ax.set_xticklabels(names, rotation=45 if len(names) > 6 else 0, ha="right" if len(names) > 6 else "center")
    ax.set_ylabel("radial error (mm, world)")
    ax.set_title("Radial error per landmark")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    return Path(path)


def sdr_curve(errors: Mapping[str, Sequence[RadialError]], path, thresholds=(2, 2.5, 3, 4)) -> Path:
    """SDR (% of pairs with error <= r) against radius r in mm, one line per method."""
    all_e = np.concatenate([[r.error_mm for r in recs] for recs in errors.values()])
    r_max = max(10.0, float(np.ceil(all_e.max())) if all_e.size else 10.0)
    radii = np.linspace(0.0, r_max, 401)
    fig = Figure(figsize=(5, 4), dpi=100)
    ax = fig.add_subplot()
    for label, recs in errors.items():
        e = np.array([r.error_mm for r in recs], float)
        ax.plot(radii, 100.0 * np.mean(e[:, None] <= radii[None, :], axis=0), label=label)
    for t in thresholds:
        ax.axvline(float(t), color="0.7", lw=0.8, ls="--")
    ax.set_xlabel("radius (mm)")
    ax.set_ylabel("SDR (%)")
    ax.set_ylim(0, 100.5)
    ax.set_xlim(0, r_max)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    return Path(path)


def reliability_plot(table: Sequence[Mapping], path) -> Path:
    """Mean actual against mean expected error per bin of the expected error (reliability.reliability_table): on
    the diagonal where the estimates are calibrated."""
    expected = [row["expected_mm"] for row in table]
    actual = [row["actual_mm"] for row in table]
    top = max(expected + actual + [1.0]) * 1.1
    fig = Figure(figsize=(4.5, 4.5), dpi=100)
    ax = fig.add_subplot()
    ax.plot([0, top], [0, top], color="0.6", ls="--", lw=1, label="calibrated")
    ax.plot(expected, actual, "o-", label="landmarks, by bins of expected error")
    for x, y, row in zip(expected, actual, table):
        ax.annotate(f"n={row['n']}", (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7)
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("expected error (mm)")
    ax.set_ylabel("actual radial error (mm)")
    ax.set_title("Reliability of expected_error_mm")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    return Path(path)
