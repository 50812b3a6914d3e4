"""Post-processing: proposal-free decoding of masks and class scores, Soft-NMS, window merging."""

from gsmt.postprocess.decode import (
    DEFAULT_THRESHOLDS,
    Detections,
    actionness_decode,
    decode,
    decode_batch,
    find_runs,
    to_video_time,
)
from gsmt.postprocess.nms import merge_windows, segment_iou, soft_nms

__all__ = [
    "DEFAULT_THRESHOLDS",
    "Detections",
    "actionness_decode",
    "decode",
    "decode_batch",
    "find_runs",
    "merge_windows",
    "segment_iou",
    "soft_nms",
    "to_video_time",
]
