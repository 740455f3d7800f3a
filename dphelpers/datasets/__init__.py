"""Real-dataset loaders: Human3.6M and MPI-INF-3DHP in the project's common contract (notebook 05).

Both data sets are licensed and not shipped; whoever has them can evaluate on them:

- :func:`load_h36m_h5`: the DiffPose authors' HDF5 files (HRNet heatmaps + ground truth);
- :func:`load_videopose3d`: VideoPose3D's ``.npz`` files (world-frame poses for the
  embedded pipeline's random cameras, optionally with real 2D joints);
- :func:`load_3dhp_test`: the MPI-INF-3DHP test set's ``annot_data.mat``;
- :func:`read_c3d` and :func:`markers_to_h36m`: optical marker captures (C3D) turned into
  Human3.6M-17 joint centres, world frame (the embedded new-people file is made this way).

The camera-frame loaders return a :class:`LoadedSet`, whose ``to_sample_batch`` gives the
same :class:`~dphelpers.pipeline.SampleBatch` as the embedded data, so the model never
knows the source.  Example (Human3.6M protocol)::

    test = load_h36m_h5(path, subjects=TEST_SUBJECTS, every=TEST_EVERY, table="dataset/testset")
    ev = evaluate(model, test.to_sample_batch(None))
    p1 = h36m_protocol_mean(ev.p1_min, test.meta["action"])
"""
from .base import LoadedSet
from .c3d import C3dMarkers, markers_to_h36m, read_c3d
from .h36m import (ACTIONS, H5_KEYS, TEST_EVERY, TEST_SUBJECTS, TRAIN_SUBJECTS, h36m_per_action,
                   h36m_protocol_mean, load_h36m_h5, normalize_action)
from .mpi3dhp import (AUC_THRESHOLDS_MM, MPI3DHP_ACTIVITIES, MPI3DHP_KEYS, MPI3DHP_NAMES,
                      MPI3DHP_TO_H36M, auc3d, load_3dhp_test, pck3d)
from .videopose3d import WorldPoses, load_videopose3d

__all__ = [
    "LoadedSet", "WorldPoses", "C3dMarkers", "read_c3d", "markers_to_h36m",
    "ACTIONS", "TRAIN_SUBJECTS", "TEST_SUBJECTS", "TEST_EVERY", "H5_KEYS", "normalize_action",
    "load_h36m_h5", "h36m_per_action", "h36m_protocol_mean", "load_videopose3d",
    "MPI3DHP_NAMES", "MPI3DHP_TO_H36M", "MPI3DHP_ACTIVITIES", "MPI3DHP_KEYS", "AUC_THRESHOLDS_MM",
    "load_3dhp_test", "pck3d", "auc3d",
]
