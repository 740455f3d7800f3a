"""Joint names, parents, bones and index maps of the two skeletons (notebook 01).

Human3.6M-17 is the 3D skeleton the model predicts; MPII-16 is the order of the
2D detector heatmaps.  Everything else in :mod:`dphelpers` imports this module;
it imports nothing from the package.
"""
from __future__ import annotations

__all__ = [
    "H36M_NAMES", "H36M_PARENTS", "H36M_BONES", "H36M_FLIP_PAIRS", "H36M_LEFT", "H36M_RIGHT",
    "MPII_NAMES", "MPII_PARENTS", "MPII_BONES", "MPII_FLIP_PAIRS", "MPII_LEFT", "MPII_RIGHT",
    "H36M_TO_MPII", "H36M_RAW32_TO_17", "N_H36M", "N_MPII", "PELVIS", "L_HIP", "R_HIP",
    "NON_PELVIS", "PCK_JOINTS", "CPS_JOINTS", "side_of",
]

# --- Human3.6M, 17 joints (3D) ---------------------------------------------------------
H36M_NAMES: tuple[str, ...] = (
    "Pelvis", "RHip", "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle", "Spine", "Thorax",
    "Neck/Nose", "Head", "LShoulder", "LElbow", "LWrist", "RShoulder", "RElbow", "RWrist",
)
H36M_PARENTS: tuple[int, ...] = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)
H36M_BONES: tuple[tuple[int, int], ...] = tuple(
    (p, c) for c, p in enumerate(H36M_PARENTS) if p >= 0
)
#: (right, left) pairs, like MPII_FLIP_PAIRS.
H36M_FLIP_PAIRS: tuple[tuple[int, int], ...] = ((1, 4), (2, 5), (3, 6), (14, 11), (15, 12),
                                                (16, 13))
H36M_LEFT: tuple[int, ...] = (4, 5, 6, 11, 12, 13)
H36M_RIGHT: tuple[int, ...] = (1, 2, 3, 14, 15, 16)
#: The raw 32-joint Human3.6M layout -> the 17 joints used everywhere.
H36M_RAW32_TO_17: tuple[int, ...] = (0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27)

N_H36M = 17
PELVIS, R_HIP, L_HIP = 0, 1, 4
#: The 16 joints the network predicts (all but the pelvis).
NON_PELVIS: tuple[int, ...] = tuple(range(1, 17))
#: PCK@150 joints: all but pelvis, spine and neck/nose.
PCK_JOINTS: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 8, 10, 11, 12, 13, 14, 15, 16)
#: CPS joints: all but the spine (pelvis included).
CPS_JOINTS: tuple[int, ...] = tuple(j for j in range(17) if j != 7)

# --- MPII, 16 joints (2D heatmaps) -------------------------------------------------------
MPII_NAMES: tuple[str, ...] = (
    "RAnkle", "RKnee", "RHip", "LHip", "LKnee", "LAnkle", "Pelvis", "Thorax", "UpperNeck",
    "HeadTop", "RWrist", "RElbow", "RShoulder", "LShoulder", "LElbow", "LWrist",
)
#: Drawing tree; the shoulders hang from the upper neck, which is H36M's thorax.
MPII_PARENTS: tuple[int, ...] = (1, 2, 6, 6, 3, 4, -1, 6, 7, 8, 11, 12, 8, 8, 13, 14)
MPII_BONES: tuple[tuple[int, int], ...] = tuple(
    (p, c) for c, p in enumerate(MPII_PARENTS) if p >= 0
)
MPII_FLIP_PAIRS: tuple[tuple[int, int], ...] = ((0, 5), (1, 4), (2, 3), (10, 15), (11, 14),
                                                (12, 13))
MPII_LEFT: tuple[int, ...] = (3, 4, 5, 13, 14, 15)
MPII_RIGHT: tuple[int, ...] = (0, 1, 2, 10, 11, 12)
N_MPII = 16

#: MPII joint ``j`` sits at H36M joint ``H36M_TO_MPII[j]``:
#: ``pose_mpii = pose_h36m[..., H36M_TO_MPII, :]``.
H36M_TO_MPII: tuple[int, ...] = (3, 2, 1, 4, 5, 6, 0, 7, 8, 10, 16, 15, 14, 11, 12, 13)


def side_of(joint: int, skeleton: str = "h36m") -> str:
    """'left', 'right' or 'centre' for a joint index of ``skeleton`` ('h36m' or 'mpii')."""
    if skeleton == "h36m":
        left, right, n = H36M_LEFT, H36M_RIGHT, N_H36M
    elif skeleton == "mpii":
        left, right, n = MPII_LEFT, MPII_RIGHT, N_MPII
    else:
        raise ValueError(f"skeleton must be 'h36m' or 'mpii', got {skeleton!r}")
    if not 0 <= joint < n:
        raise IndexError(f"joint {joint} out of range for {skeleton} ({n} joints)")
    return "left" if joint in left else "right" if joint in right else "centre"
