"""The real 2D detector (notebook 06): a photo -> person crop -> 16 MPII heatmaps.

:mod:`~dphelpers.detector.blazepose` runs Google's BlazePose models (person detector and
landmark heatmaps, shipped inside ``mediapipe==0.10.21``); :mod:`~dphelpers.detector.detect`
maps BlazePose's 33 landmark heatmaps to the ``(1, 16, 64, 64)`` MPII heatmaps that DiffPose
reads, the same contract as the simulator in :mod:`dphelpers.heatmaps`.
"""
from .detect import (BLAZEPOSE_TO_MPII, Detection, DetectorConfig, crop_person, detect_heatmaps,
                     load_image, mpii_from_blazepose)

__all__ = ["BLAZEPOSE_TO_MPII", "Detection", "DetectorConfig", "crop_person", "detect_heatmaps",
           "load_image", "mpii_from_blazepose"]
