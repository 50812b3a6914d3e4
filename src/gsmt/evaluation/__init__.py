"""Evaluation: detection mAP (official ActivityNet protocol), Recall@kx and AR@AN, per-frame mAP."""

from gsmt.evaluation.detection import DetectionMetrics, evaluate_detection, merge_labels
from gsmt.evaluation.frames import FrameMetrics, evaluate_frames
from gsmt.evaluation.predictions import FlatPredictions, flatten_predictions, load_predictions
from gsmt.evaluation.recall import average_recall_curve, recall_at_k
from gsmt.evaluation.tiou import TIOU_PRESETS, parse_tiou, segment_tiou

__all__ = [
    "TIOU_PRESETS",
    "DetectionMetrics",
    "FlatPredictions",
    "FrameMetrics",
    "average_recall_curve",
    "evaluate_detection",
    "evaluate_frames",
    "flatten_predictions",
    "load_predictions",
    "merge_labels",
    "parse_tiou",
    "recall_at_k",
    "segment_tiou",
]
