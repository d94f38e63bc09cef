"""Datasets as GroupedData (inputs, labels, group ids), splits, batching and augmentation."""

from prunefair.data.base import DatasetSplits, GroupedData, stratified_split
from prunefair.data.loader import Augment, iterate_batches
from prunefair.data.registry import DatasetInfo, dataset_info, dataset_names, load_dataset, register_dataset

__all__ = [
    "Augment", "DatasetInfo", "DatasetSplits", "GroupedData", "dataset_info", "dataset_names",
    "iterate_batches", "load_dataset", "register_dataset", "stratified_split",
]
