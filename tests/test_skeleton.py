"""The two skeletons: names, trees, left/right pairs and the index maps, checked against
REFERENCE.md and against each other."""
import pytest

from dphelpers import skeleton as S


def test_reference_index_maps():
    assert S.H36M_TO_MPII == (3, 2, 1, 4, 5, 6, 0, 7, 8, 10, 16, 15, 14, 11, 12, 13)
    assert S.H36M_RAW32_TO_17 == (0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27)
    # the map sends every MPII joint to the H36M joint of the same body part
    same = {"RAnkle": "RAnkle", "RKnee": "RKnee", "RHip": "RHip", "LHip": "LHip",
            "LKnee": "LKnee", "LAnkle": "LAnkle", "Pelvis": "Pelvis", "Thorax": "Spine",
            "UpperNeck": "Thorax", "HeadTop": "Head", "RWrist": "RWrist", "RElbow": "RElbow",
            "RShoulder": "RShoulder", "LShoulder": "LShoulder", "LElbow": "LElbow",
            "LWrist": "LWrist"}
    for m, h in enumerate(S.H36M_TO_MPII):
        assert same[S.MPII_NAMES[m]] == S.H36M_NAMES[h]
    assert sorted(S.H36M_TO_MPII) == [j for j in range(17) if j != 9]   # all but neck/nose


@pytest.mark.parametrize("names,parents,pairs,left,right", [
    (S.H36M_NAMES, S.H36M_PARENTS, S.H36M_FLIP_PAIRS, S.H36M_LEFT, S.H36M_RIGHT),
    (S.MPII_NAMES, S.MPII_PARENTS, S.MPII_FLIP_PAIRS, S.MPII_LEFT, S.MPII_RIGHT),
])
def test_trees_and_sides(names, parents, pairs, left, right):
    n = len(names)
    assert len(parents) == n and parents.count(-1) == 1
    for j, p in enumerate(parents):        # every joint reaches the root: a tree, no cycle
        seen = set()
        while p != -1:
            assert p not in seen and 0 <= p < n
            seen.add(p)
            p = parents[p]
    for r, l in pairs:
        assert names[r][0] == "R" and names[l][0] == "L" and names[r][1:] == names[l][1:]
    assert set(left) == {l for _, l in pairs} and set(right) == {r for r, _ in pairs}


def test_side_of_and_constants():
    assert S.side_of(S.L_HIP) == "left" and S.side_of(S.R_HIP) == "right"
    assert S.side_of(S.PELVIS) == "centre" and S.side_of(15, "mpii") == "left"
    assert len(S.PCK_JOINTS) == 14 and 7 not in S.CPS_JOINTS and 0 in S.CPS_JOINTS
    assert len(S.H36M_BONES) == 16 and len(S.MPII_BONES) == 15
    with pytest.raises(ValueError, match="skeleton must be"):
        S.side_of(0, "coco")
    with pytest.raises(IndexError, match="out of range"):
        S.side_of(17)
