"""Datasets as GroupedData (inputs, labels, group ids), splits, batching and augmentation."""

from prunefair.data.base import DatasetSplits, GroupedData, stratified_split
from prunefair.data.loader import Augment, iterate_batches
from prunefair.data.images import ImageReadError
from prunefair.data.registry import (
    DataRefused, DatasetInfo, dataset_info, dataset_names, load_dataset, register_dataset,
)
from prunefair.data.resample import resample_group
from prunefair.data.tensors import grouped_from_arrays, register_arrays

__all__ = [
    "Augment", "DataRefused", "DatasetInfo", "DatasetSplits", "GroupedData", "ImageReadError", "dataset_info",
    "dataset_names", "grouped_from_arrays", "iterate_batches", "load_dataset", "register_arrays",
    "register_dataset", "resample_group", "stratified_split",
]
