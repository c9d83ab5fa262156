"""Metric learning: building pair/triplet lists, and the metrics that judge embeddings
(pair verification, triplet accuracy, retrieval) with their plots and the evaluation of a
net on list files."""

from caffe2torch.metric.lists import (
    make_pairs,
    make_triplets,
    write_pair_lists,
    write_triplet_lists,
)
from caffe2torch.metric.retrieval import mean_average_precision, recall_at_k
from caffe2torch.metric.triplet import TripletAccuracy, all_triplets_accuracy, triplet_accuracy
from caffe2torch.metric.verification import (
    RocCurve,
    accuracy_at,
    best_threshold,
    equal_error_rate,
    pair_distances,
    roc_auc,
    roc_curve,
)

__all__ = [
    "RocCurve",
    "TripletAccuracy",
    "accuracy_at",
    "all_triplets_accuracy",
    "best_threshold",
    "equal_error_rate",
    "make_pairs",
    "make_triplets",
    "mean_average_precision",
    "pair_distances",
    "recall_at_k",
    "roc_auc",
    "roc_curve",
    "triplet_accuracy",
    "write_pair_lists",
    "write_triplet_lists",
]
