"""Converters for the paper's public benchmarks, one module each, from the layout their download has.

Each module exposes DEFAULT_ID, DEFAULT_NAME, LANDMARKS, ``collect_cases(source_dir)`` and
``convert(source_dir, raw_root, dataset_id, name, overwrite)``.
"""
import importlib
import json
import warnings
from os.path import dirname, join
from typing import Dict, List

from nnlandmark.dataset_conversion.dataset_writer import ConversionWarning

BENCHMARKS = ("afids", "mml", "pddca", "feta", "lfc")


def benchmark_module(name: str):
    return importlib.import_module(f"{__name__}.{name}")


def split_file(benchmark: str) -> str:
    return join(dirname(__file__), "splits", f"{benchmark}.json")


def shipped_test_cases(benchmark: str, found: Dict[str, object], source_dir: str) -> List[str]:
    """The test cases listed in splits/<benchmark>.json that the download has; warns about the others."""
    with open(split_file(benchmark), encoding="utf-8") as f:
        listed = json.load(f)["test"]
    absent = [c for c in listed if c not in found]
    if absent:
        warnings.warn(f"{len(absent)} of the {len(listed)} test cases of {split_file(benchmark)} have no landmark file "
                      f"under {source_dir} ({', '.join(absent[:3])}{', ...' if len(absent) > 3 else ''}): the test "
                      f"set is smaller than the benchmark's", ConversionWarning)
    return [c for c in listed if c in found]
