"""Evaluation: detection mAP (official ActivityNet protocol), Recall@kx and AR@AN."""

from gsmt.evaluation.detection import (
    TIOU_PRESETS,
    DetectionMetrics,
    FlatPredictions,
    evaluate_detection,
    flatten_predictions,
    load_predictions,
    merge_labels,
    parse_tiou,
    segment_tiou,
)
from gsmt.evaluation.recall import average_recall_curve, recall_at_k

__all__ = [
    "TIOU_PRESETS",
    "DetectionMetrics",
    "FlatPredictions",
    "average_recall_curve",
    "evaluate_detection",
    "flatten_predictions",
    "load_predictions",
    "merge_labels",
    "parse_tiou",
    "recall_at_k",
    "segment_tiou",
]
