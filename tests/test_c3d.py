"""C3D marker files (written here) read back exactly; joint centres from markers; the new-people
file; bad files refused by name."""
import struct

import numpy as np
import pytest

from dphelpers.data import load_mocap, new_people_path
from dphelpers.datasets.c3d import (ANKLE_HALF_WIDTH_M, MARKERS_NEEDED, fill_gaps,
                                    markers_to_h36m, read_c3d, rigid_fill, up_rotation,
                                    valid_runs, C3dMarkers)


def _param(name: str, gid: int, dtype: int, dims: tuple, data: bytes, last=False) -> bytes:
    n = name.encode()
    body = struct.pack("<bB", dtype, len(dims)) + bytes(dims) + data + b"\x00"   # no description
    nxt = struct.pack("<h", 0 if last else 2 + len(body))
    return struct.pack("<bb", len(n), gid) + n + nxt + body


def _strings(items: list[str], width: int) -> bytes:
    return b"".join(s.ljust(width).encode() for s in items)


def write_c3d(path, labels, points, rate=120.0, residual=None, scale=-1.0, proc=84,
              unit="mm", cut=0):
    """A minimal C3D file: header, one POINT group (LABELS, UNITS), frame data."""
    n, m, _ = points.shape
    residual = np.zeros((n, m)) if residual is None else residual
    group = struct.pack("<bb", 5, -1) + b"POINT" + struct.pack("<h", 3) + b"\x00"
    width = max(len(s) for s in labels)
    params = group + _param("LABELS", 1, -1, (width, m), _strings(labels, width))
    params += _param("UNITS", 1, -1, (len(unit),), unit.encode(), last=True)
    section = bytes([1, 0x50, 1, proc]) + params
    section = section.ljust(512, b"\x00")
    header = bytearray(512)
    header[0], header[1] = 2, 0x50
    struct.pack_into("<hhhhh", header, 2, m, 0, 1, n, 0)
    struct.pack_into("<f", header, 12, scale)
    struct.pack_into("<hh", header, 16, 3, 0)
    struct.pack_into("<f", header, 20, rate)
    frames = np.concatenate([points, residual[..., None]], axis=-1)
    if scale < 0:
        data = frames.astype("<f4").tobytes()
    else:
        frames[..., :3] /= scale
        data = np.round(frames).astype("<i2").tobytes()
    blob = bytes(header) + section + data
    path.write_bytes(blob[:len(blob) - cut] if cut else blob)
    return path


def test_points_read_back_with_gaps_as_nan(tmp_path):
    rng = np.random.default_rng(0)
    pts = rng.normal(0, 500, (5, 3, 3))
    res = np.zeros((5, 3))
    res[2, 1] = -1.0                                      # a gap, as C3D marks it
    pts[3, 2] = 0.0                                       # ... and as some writers do
    f = write_c3d(tmp_path / "a.c3d", ["Subj:LKNE", "Subj:LKNI", "RKNE"], pts, 100.0, res)
    m = read_c3d(f)
    assert m.labels == ("LKNE", "LKNI", "RKNE") and m.rate == 100.0 and m.unit == "mm"
    assert np.isnan(m.points[2, 1]).all() and np.isnan(m.points[3, 2]).all()
    keep = np.isfinite(m.points)
    np.testing.assert_allclose(m.points[keep], pts.astype(np.float32)[keep])
    np.testing.assert_allclose(m.marker("RKNE")[0], pts[0, 2].astype(np.float32))


def test_integer_storage_is_scaled(tmp_path):
    pts = np.array([[[100.0, -200.0, 300.0]], [[10.0, 20.0, 30.0]]])
    m = read_c3d(write_c3d(tmp_path / "i.c3d", ["A"], pts, scale=0.5))
    np.testing.assert_allclose(m.points, pts)


@pytest.mark.parametrize("kw, err, message", [
    ({"proc": 85}, ValueError, "processor type DEC"),
    ({"cut": 10}, ValueError, "truncated"),
])
def test_bad_c3d_files_are_refused_by_name(tmp_path, kw, err, message):
    pts = np.ones((4, 2, 3))
    f = write_c3d(tmp_path / "bad.c3d", ["A", "B"], pts, **kw)
    with pytest.raises(err, match=message):
        read_c3d(f)


def test_not_a_c3d_file_and_a_missing_marker_are_named(tmp_path):
    f = tmp_path / "x.c3d"
    f.write_bytes(b"hello" * 200)
    with pytest.raises(ValueError, match="x.c3d: not a C3D file"):
        read_c3d(f)
    m = read_c3d(write_c3d(tmp_path / "y.c3d", ["A"], np.ones((2, 1, 3))))
    with pytest.raises(KeyError, match="y.c3d: no marker 'LKNE'"):
        m.marker("LKNE")
    with pytest.raises(FileNotFoundError, match="nope.c3d"):
        read_c3d(tmp_path / "nope.c3d")


def test_fill_gaps_fills_short_gaps_only():
    p = np.arange(10.0)[:, None, None] * np.ones((10, 1, 3))
    p[2:4] = np.nan                                       # 2 frames: filled
    p[5:9] = np.nan                                       # 4 frames: too long for max_gap 3
    out = fill_gaps(p, 3)
    np.testing.assert_allclose(out[2:4, 0, 0], [2.0, 3.0])
    assert np.isnan(out[5:9]).all()


def test_rigid_fill_places_a_missing_marker_of_a_moved_segment():
    rng = np.random.default_rng(1)
    seg = rng.normal(0, 100, (4, 3))                      # four markers on one segment
    angle = 0.7
    rot = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0],
                    [0, 0, 1.0]])
    p = np.stack([seg, seg @ rot.T + [50.0, -20.0, 5.0]])
    truth = p[1, 2].copy()
    p[1, 2] = np.nan
    out = rigid_fill(p, [0, 1, 2, 3])
    np.testing.assert_allclose(out[1, 2], truth, atol=1e-9)
    too_few = p.copy()
    too_few[1, :2] = np.nan                               # only two left: nothing placed
    assert np.isnan(rigid_fill(too_few, [0, 1, 2, 3])[1, 2]).all()


def test_valid_runs_finds_complete_stretches():
    p = np.zeros((10, 17, 3))
    p[3] = np.nan
    p[8, 5, 0] = np.nan
    assert valid_runs(p, 3) == [(0, 3), (4, 8)]
    assert valid_runs(p, 4) == [(4, 8)]


def _subject(up="z"):
    """Markers of a person standing around known joint centres (mm), facing -y, left at +x,
    Y or Z up."""
    j = {"Lknee": [100, 0, 500], "Rknee": [-100, 0, 500], "Lankle": [100, 0, 80],
         "Rankle": [-100, 0, 80], "Lsh": [180, 0, 1450], "Rsh": [-180, 0, 1450],
         "Lelb": [200, 0, 1150], "Relb": [-200, 0, 1150], "Lwr": [210, 0, 900],
         "Rwr": [-210, 0, 900]}
    j = {k: np.array(v, float) for k, v in j.items()}
    m = {"ARIEL": [0, 0, 1750], "LFHD": [60, -80, 1650], "RFHD": [-60, -80, 1650],
         "LBHD": [60, 80, 1650], "RBHD": [-60, 80, 1650],
         "LFWT": [120, -60, 1000], "RFWT": [-120, -60, 1000], "LBWT": [60, 100, 1010],
         "RBWT": [-60, 100, 1010]}
    m = {k: np.array(v, float) for k, v in m.items()}
    for s, sign in (("L", 1), ("R", -1)):
        m[f"{s}KNE"] = j[f"{s}knee"] + [sign * 50, 0, 0]          # lateral
        m[f"{s}KNI"] = j[f"{s}knee"] - [sign * 50, 0, 0]          # medial
        m[f"{s}ANK"] = j[f"{s}ankle"] + [sign * 35, 0, 0]
        m[f"{s}FSH"] = j[f"{s}sh"] - [0, 50, 0]
        m[f"{s}BSH"] = j[f"{s}sh"] + [0, 50, 0]
        m[f"{s}ELB"] = j[f"{s}elb"] + [sign * 30, 0, 0]
        m[f"{s}IEL"] = j[f"{s}elb"] - [sign * 30, 0, 0]
        m[f"{s}OWR"] = j[f"{s}wr"] + [sign * 25, 0, 0]
        m[f"{s}IWR"] = j[f"{s}wr"] - [sign * 25, 0, 0]
    labels = sorted(m)
    pts = np.stack([m[k] for k in labels])[None].repeat(3, axis=0)
    if up == "y":                                     # (x, y, z) z-up -> y-up lab: (x, z, -y)
        pts = pts[..., [0, 2, 1]] * [1, 1, -1]
    return C3dMarkers(tuple(labels), pts, 120.0, "mm", "subject"), j


@pytest.mark.parametrize("up", ["z", "y"])
def test_joint_centres_from_markers(up):
    markers, j = _subject(up)
    assert set(n.format(s=s) for n in MARKERS_NEEDED for s in "LR") <= set(markers.labels)
    p = markers_to_h36m(markers)[0]
    assert p.shape == (17, 3)
    np.testing.assert_allclose(p[5], j["Lknee"] / 1000, atol=1e-9)     # metres, Z up
    np.testing.assert_allclose(p[2], j["Rknee"] / 1000, atol=1e-9)
    np.testing.assert_allclose(p[13], j["Lwr"] / 1000, atol=1e-9)
    np.testing.assert_allclose(p[14], j["Rsh"] / 1000, atol=1e-9)
    np.testing.assert_allclose(p[6], j["Lankle"] / 1000, atol=1e-9)      # medial shift
    assert ANKLE_HALF_WIDTH_M == pytest.approx(0.035)
    np.testing.assert_allclose(p[0], 0.5 * (p[1] + p[4]))
    assert p[4, 0] > p[0, 0] > p[1, 0]                    # left hip on the left (+x)
    assert p[1, 2] < 1.0 and p[10, 2] == pytest.approx(1.75)   # hips below the waist markers
    assert p[1, 1] > -0.06                                # ... and behind the front ones
    assert abs(p[4, 0] - p[1, 0]) < 0.24                  # hips inside the waist markers
    np.testing.assert_allclose(p[8], 0.5 * (p[11] + p[14]))   # thorax: between the shoulders


def test_up_rotation_is_proper_and_refuses_a_lying_person():
    r = up_rotation(np.array([[0.0, 0, 1700]]), np.zeros((1, 3)))
    np.testing.assert_allclose(r, np.eye(3))
    r = up_rotation(np.array([[0.0, -1700, 0]]), np.zeros((1, 3)))
    assert np.linalg.det(r) == pytest.approx(1.0)
    np.testing.assert_allclose(r @ [0.0, -1700, 0], [0, 0, 1700])
    np.testing.assert_allclose(up_rotation(np.array([[0.0, 1700, 0]]), np.zeros((1, 3))),
                               [[1, 0, 0], [0, 0, -1], [0, 1, 0]])     # as BVH's Y up
    with pytest.raises(ValueError, match="no clear vertical axis"):
        up_rotation(np.array([[1000.0, 1000, 200]]), np.zeros((1, 3)))


def test_the_new_people_file_holds_three_people_the_training_data_does_not():
    new = load_mocap(new_people_path())
    names = [c.name for c in new]
    assert names[0].startswith("nick_freeform") and names[-1].startswith("range_of_motion")
    assert any(n.startswith("sehoon_squat") for n in names)
    assert not {c.name for c in load_mocap()} & set(names)
    for c in new:
        assert ("dart-doc" in c.source or "MotionCaptureROM" in c.source) and c.fps == 30.0
        np.testing.assert_allclose(c.poses_m[:, 0], 0.5 * (c.poses_m[:, 1] + c.poses_m[:, 4]),
                                   atol=1e-6)
        assert (c.poses_m[:, 10, 2] > c.poses_m[:, 0, 2]).mean() > 0.9   # mostly upright
        thigh = np.linalg.norm(c.poses_m[:, 5] - c.poses_m[:, 4], axis=-1)
        assert 0.35 < thigh.mean() < 0.47 and thigh.std() < 0.04     # skin moves in squats
        moved = np.linalg.norm(np.diff(c.poses_m - c.poses_m[:, :1], axis=0), axis=-1)
        assert (moved.mean(axis=-1) >= 0.015 - 1e-6).all()          # standing still thinned


def test_units_are_read_and_unknown_units_refused(tmp_path):
    markers, _ = _subject()
    in_m = C3dMarkers(markers.labels, markers.points / 1000, 120.0, "m", "subject")
    np.testing.assert_allclose(markers_to_h36m(in_m), markers_to_h36m(markers), atol=1e-12)
    with pytest.raises(ValueError, match="POINT:UNITS is 'in'"):
        markers_to_h36m(C3dMarkers(markers.labels, markers.points, 120.0, "in", "subject"))
    f = write_c3d(tmp_path / "cm.c3d", ["A"], np.ones((2, 1, 3)), unit="cm")
    assert read_c3d(f).unit == "cm"


def _builder():
    import importlib.util
    import sys
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / "data" / "make_new_people.py"
    spec = importlib.util.spec_from_file_location("make_new_people", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod                      # its dataclasses look themselves up
    spec.loader.exec_module(mod)
    return mod


VRML = """#VRML V2.0 utf8
DEF Root Transform {
  translation 1 0 0
  scale 2 2 2
  children [
  DEF Root-TIMER TimeSensor { loop TRUE cycleInterval 1 },
  DEF Root-ROT-INTERP OrientationInterpolator {
    key [0, 1]
    keyValue [0 0 1 0, 0 0 1 1.5708] },
  DEF Child Transform {
    translation 0 1 0
    children [ DEF Tip Transform { translation 0 0 3 } ]
  }
  ROUTE Root-TIMER.fraction_changed TO Root-ROT-INTERP.set_fraction
  ROUTE Root-ROT-INTERP.value_changed TO Root.set_rotation
  ]
}
"""


def test_the_vrml_reader_poses_a_tree_through_its_interpolators():
    """The range-of-motion clip's reader: T R S down the tree, rotation keys interpolated."""
    b = _builder()
    o = b.vrml_origins(VRML, np.array([0.0, 0.5, 1.0]))
    np.testing.assert_allclose(o["Root"], [[1, 0, 0]] * 3, atol=1e-9)
    # child at (0, 1, 0) scaled by 2, turned by 0 / 45 / 90 degrees about z
    s = np.sqrt(0.5)
    np.testing.assert_allclose(o["Child"], [[1, 2, 0], [1 - 2 * s, 2 * s, 0], [-1, 0, 0]],
                               atol=1e-4)
    np.testing.assert_allclose(o["Tip"][:, 2], 6.0)           # (0, 0, 3) under scale 2
    with pytest.raises(ValueError, match="expected '\\{' after 'Transform'"):
        b.parse_vrml("Transform [ ]")


def test_glitches_are_cut_with_a_margin():
    b = _builder()
    p = np.zeros((20, 17, 3))
    p[10, 13, 0] = 1.0                        # the wrist jumps 1 m for one frame (30 m/s)
    ok = b.glitch_free(p, 30.0)
    assert not ok[9:12].any() and ok[:8].all() and ok[13:].all()
    still = b.thin_static(np.repeat(p[:1], 5, axis=0))
    assert len(still) == 1
