"""Converters for the paper's public benchmarks, one module each, from the layout their download has.

Each module exposes DEFAULT_ID, DEFAULT_NAME, LANDMARKS, CHANNEL, DATASET_INFO (description, reference, licence
for dataset.json), optionally BIOMETRY_PAIRS and BIOMETRY_NAMES, ``collect_cases(source_dir)`` and
``convert(source_dir, raw_root, dataset_id, name, overwrite)``.
"""
import importlib
import json
import warnings
from os.path import dirname, join
from types import ModuleType
from typing import Dict, List, Sequence

from nnlandmark.dataset_conversion.dataset_writer import CaseSource, ConversionWarning, write_landmark_dataset

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


def write_benchmark_dataset(benchmark: ModuleType, cases: Sequence[CaseSource], test_cases: Sequence[str],
                            raw_root: str, dataset_id: int, name: str, overwrite: bool, **info) -> str:
    """The collected cases of a benchmark module as ``raw_root/DatasetXXX_name``, its landmarks in their order, its
    channel name, and its DATASET_INFO (updated by ``info``) and biometry pairs in dataset.json."""
    extra = {}
    if hasattr(benchmark, "BIOMETRY_PAIRS"):
        extra = {"biometry_pairs": [list(p) for p in benchmark.BIOMETRY_PAIRS],
                 "biometry_names": benchmark.BIOMETRY_NAMES}
    return write_landmark_dataset(cases, raw_root, dataset_id, name, landmark_names=benchmark.LANDMARKS,
                                  test_cases=test_cases, channel_names={"0": benchmark.CHANNEL}, overwrite=overwrite,
                                  dataset_json_extra={**extra, **benchmark.DATASET_INFO, **info})
