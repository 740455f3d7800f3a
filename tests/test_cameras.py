"""Tests for dphelpers.cameras: projection, crops, heatmap coordinates and random views."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dphelpers import cameras as C
from dphelpers import data
from dphelpers.skeleton import H36M_PARENTS, H36M_TO_MPII


@pytest.fixture(scope="module")
def poses() -> torch.Tensor:
    clips = data.load_mocap()
    return torch.from_numpy(np.concatenate([c.poses_m[::40] for c in clips]))  # ~150 poses


def _bones(p: torch.Tensor) -> torch.Tensor:
    return (p[:, 1:] - p[:, list(H36M_PARENTS[1:])]).norm(dim=-1)


def test_optical_axis_hits_principal_point(poses):
    cams = C.random_cameras(poses[:8], C.CameraConfig(), torch.Generator().manual_seed(0))
    on_axis = torch.zeros(8, 1, 3)
    on_axis[..., 2] = torch.linspace(1.0, 9.0, 8)[:, None]
    uv = C.project(on_axis, cams)
    torch.testing.assert_close(uv[:, 0], cams.center_px)
    # and a known value: x = 1 m at z = 2 m lands f/2 pixels right of the centre
    pt = torch.tensor([[[1.0, 0.0, 2.0]]]).expand(8, 1, 3)
    torch.testing.assert_close(C.project(pt, cams)[:, 0, 0], cams.center_px[:, 0] + cams.focal_px / 2)


def test_cameras_look_at_pelvis_and_are_rotations(poses):
    cfg = C.CameraConfig(target_jitter_m=0.0, roll_deg=(0.0, 0.0), center_jitter_px=0.0)
    cams = C.random_cameras(poses, cfg, torch.Generator().manual_seed(1))
    eye = torch.eye(3).expand(len(cams), 3, 3)
    torch.testing.assert_close(cams.R @ cams.R.transpose(1, 2), eye, atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.linalg.det(cams.R), torch.ones(len(cams)))
    pelvis_cam = C.world_to_camera(poses[:, :1], cams)[:, 0]
    torch.testing.assert_close(pelvis_cam[:, :2], torch.zeros(len(cams), 2), atol=1e-4, rtol=0)
    assert ((pelvis_cam[:, 2] >= 3.5 - 1e-4) & (pelvis_cam[:, 2] <= 7.0 + 1e-4)).all()
    # world Z up maps to image up (negative camera y) for upright people without roll
    uv = C.project(C.world_to_camera(poses, cams), cams)
    assert (uv[:, 10, 1] < uv[:, 0, 1]).float().mean() > 0.9


def test_world_to_camera_keeps_bone_lengths_and_depth(poses):
    cams = C.random_cameras(poses, C.CameraConfig(), torch.Generator().manual_seed(2))
    cam = C.world_to_camera(poses, cams)
    torch.testing.assert_close(_bones(cam), _bones(poses), atol=1e-5, rtol=1e-5)
    assert (cam[..., 2] > 0.5).all()


def test_crop_box_contains_joints_with_margin():
    pts = torch.tensor([[[100.0, 200.0], [300.0, 250.0], [150.0, 400.0]]])
    box = C.crop_boxes(pts, scale=1.2)
    torch.testing.assert_close(box, torch.tensor([[200.0, 300.0, 240.0]]))  # w = h = 200, side 1.2 x 200
    g = torch.Generator().manual_seed(3)
    pts = torch.rand(64, 17, 2, generator=g) * torch.tensor([300.0, 700.0]) + 50
    box = C.crop_boxes(pts, scale=1.2)
    half_inner = box[:, None, 2:] / 2 / 1.2  # the joints fit inside the box shrunk by 1.2
    assert ((pts - box[:, None, :2]).abs() <= half_inner + 1e-3).all()
    w_h = pts.amax(1) - pts.amin(1)
    torch.testing.assert_close(box[:, 2], w_h.amax(-1) * 1.2)


def test_heatmap_px_known_values_and_round_trip():
    box = torch.tensor([[100.0, 100.0, 64.0]])  # crop [68, 132): 1 image px = 1 heatmap px
    pts = torch.tensor([[[68.5, 68.5], [131.5, 100.0]]])
    hm = C.to_heatmap_px(pts, box, heatmap_size=64)
    torch.testing.assert_close(hm, torch.tensor([[[0.0, 0.0], [63.0, 31.5]]]))
    g = torch.Generator().manual_seed(4)
    pts = torch.rand(10, 16, 2, generator=g) * 900
    boxes = torch.cat([torch.rand(10, 2, generator=g) * 900, 100 + torch.rand(10, 1, generator=g) * 500], -1)
    back = C.from_heatmap_px(C.to_heatmap_px(pts, boxes), boxes)
    torch.testing.assert_close(back, pts, atol=1e-3, rtol=0)


def test_make_views_shapes_and_contents(poses):
    b = poses.shape[0]
    view = C.make_views(poses, C.CameraConfig(), torch.Generator().manual_seed(5))
    assert view.poses_cam_mm.shape == (b, 17, 3) and view.poses_2d_px.shape == (b, 17, 2)
    assert view.boxes.shape == (b, 3) and view.joints_hm.shape == (b, 16, 2)
    assert view.cams.R.shape == (b, 3, 3) and view.cams.focal_px.shape == (b,)
    assert view.poses_cam_mm.dtype == torch.float32
    torch.testing.assert_close(_bones(view.poses_cam_mm) / 1000, _bones(poses), atol=1e-5, rtol=1e-4)
    # joints in heatmap units lie inside the 1.2x crop: [64/2 (1 - 1/1.2) - 0.5, ...]
    lo = 32 * (1 - 1 / 1.2) - 0.5
    assert (view.joints_hm >= lo - 1e-3).all() and (view.joints_hm <= 63 - lo + 1e-3).all()
    expect = C.to_heatmap_px(view.poses_2d_px[:, list(H36M_TO_MPII)], view.boxes)
    torch.testing.assert_close(view.joints_hm, expect)
    # people are fully inside the 1000 px image with the default cameras
    assert ((view.poses_2d_px > 0) & (view.poses_2d_px < 1000)).all()


def test_make_views_bone_scales(poses):
    scales = torch.full((poses.shape[0], 1), 1.1)
    view = C.make_views(poses, C.CameraConfig(), torch.Generator().manual_seed(6), bone_scales=scales)
    torch.testing.assert_close(_bones(view.poses_cam_mm) / 1000, 1.1 * _bones(poses), atol=1e-5, rtol=1e-4)


def test_seeded_determinism(poses):
    a = C.make_views(poses, C.CameraConfig(), torch.Generator().manual_seed(7))
    b = C.make_views(poses, C.CameraConfig(), torch.Generator().manual_seed(7))
    c = C.make_views(poses, C.CameraConfig(), torch.Generator().manual_seed(8))
    torch.testing.assert_close(a.poses_2d_px, b.poses_2d_px, atol=0, rtol=0)
    torch.testing.assert_close(a.cams.R, b.cams.R, atol=0, rtol=0)
    assert not torch.allclose(a.poses_2d_px, c.poses_2d_px)


def test_close_cameras_are_redrawn_or_rejected(poses):
    cfg = C.CameraConfig(distance_m=(0.5, 3.0), target_jitter_m=0.0)
    cams = C.random_cameras(poses, cfg, torch.Generator().manual_seed(9))
    assert (C.world_to_camera(poses, cams)[..., 2] > 0.5).all()
    with pytest.raises(ValueError, match="distance_m"):
        C.random_cameras(poses, C.CameraConfig(distance_m=(0.1, 0.2)), torch.Generator().manual_seed(0))


def test_errors_on_bad_shapes(poses):
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match=r"poses_m has shape \(4, 16, 3\)"):
        C.random_cameras(poses[:4, :16], C.CameraConfig(), g)
    cams = C.random_cameras(poses[:4], C.CameraConfig(), g)
    with pytest.raises(ValueError, match=r"poses_cam_m has shape \(4, 17, 2\)"):
        C.project(poses[:4, :, :2], cams)
    with pytest.raises(ValueError, match=r"expected \(3, 3, 3\)"):
        C.world_to_camera(poses[:3], cams)
    with pytest.raises(ValueError, match=r"boxes has shape \(4, 2\)"):
        C.to_heatmap_px(torch.zeros(4, 16, 2), torch.zeros(4, 2))
    with pytest.raises(ValueError, match=r"poses_2d_px has shape \(17, 2\)"):
        C.crop_boxes(torch.zeros(17, 2))
    with pytest.raises(ValueError, match="distance_m"):
        C.CameraConfig(distance_m=(5.0, 4.0))
