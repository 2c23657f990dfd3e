"""Converters for the paper's public benchmarks, one module each, from the layout their download has.

Each module exposes DEFAULT_ID, DEFAULT_NAME, LANDMARKS, ``collect_cases(source_dir)`` and
``convert(source_dir, raw_root, dataset_id, name, overwrite)``.
"""
import importlib

BENCHMARKS = ("afids", "mml", "pddca", "feta", "lfc")


def benchmark_module(name: str):
    return importlib.import_module(f"{__name__}.{name}")
