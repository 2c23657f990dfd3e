"""Landmark evaluation in world millimetres: MRE, std, SDR, detection, biometry, per-landmark and per-case tables,
plots and QC pictures (docs/design.md, "Metrics"); ``pipeline.evaluate`` is the entry point."""
