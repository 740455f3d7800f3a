"""Random pinhole cameras, projection, the person crop and heatmap pixel coordinates (notebook 01).

World frame: metres, Z up.  Camera frame (OpenCV): x right, y down, z forward, so a camera
point ``p_cam = R @ p_world + t`` projects to ``u = f * x / z + cx``, ``v = f * y / z + cy``.
Heatmap pixel ``i`` (of ``heatmap_size``) has its centre at coordinate ``i``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .data import scale_bones
from .skeleton import H36M_TO_MPII, L_HIP, N_H36M, R_HIP

__all__ = [
    "CameraConfig", "Cameras", "ViewBatch", "random_cameras", "world_to_camera", "project",
    "crop_boxes", "to_heatmap_px", "from_heatmap_px", "make_views",
]

_MIN_DEPTH_M = 0.5
_MAX_REDRAWS = 20


@dataclass(frozen=True)
class CameraConfig:
    """Ranges (lo, hi) drawn uniformly per camera.

    Elevation is the camera's angle above (+) or below (-) the look-at point at pelvis height;
    the look-at point is the pelvis plus uniform jitter of +-``target_jitter_m`` per axis.
    """

    azimuth_deg: tuple[float, float] = (0.0, 360.0)
    elevation_deg: tuple[float, float] = (-10.0, 30.0)
    roll_deg: tuple[float, float] = (-5.0, 5.0)
    distance_m: tuple[float, float] = (3.5, 7.0)
    focal_px: tuple[float, float] = (1000.0, 1200.0)
    image_px: int = 1000
    center_jitter_px: float = 20.0
    crop_scale: float = 1.2
    target_jitter_m: float = 0.2

    def __post_init__(self) -> None:
        for name in ("azimuth_deg", "elevation_deg", "roll_deg", "distance_m", "focal_px"):
            lo, hi = getattr(self, name)
            if not lo <= hi:
                raise ValueError(f"CameraConfig.{name} must be (lo, hi) with lo <= hi, "
                                 f"got {(lo, hi)}")
        if not (-90 < self.elevation_deg[0] and self.elevation_deg[1] < 90):
            raise ValueError("CameraConfig.elevation_deg must lie in (-90, 90), "
                             f"got {self.elevation_deg}")
        if self.distance_m[0] <= 0 or self.focal_px[0] <= 0 or self.image_px <= 0:
            raise ValueError("CameraConfig: distance_m, focal_px and image_px must be positive")
        if self.crop_scale <= 0 or self.target_jitter_m < 0 or self.center_jitter_px < 0:
            raise ValueError("CameraConfig: crop_scale must be > 0, jitters >= 0")


@dataclass
class Cameras:
    """A batch of cameras: ``R (b, 3, 3)`` world->camera, ``t_m (b, 3)``, ``focal_px (b,)``,
    ``center_px (b, 2)`` principal point."""

    R: torch.Tensor
    t_m: torch.Tensor
    focal_px: torch.Tensor
    center_px: torch.Tensor

    def to(self, device: torch.device | str) -> "Cameras":
        """A copy with all four tensors moved to ``device`` (dtypes kept)."""
        return Cameras(self.R.to(device), self.t_m.to(device), self.focal_px.to(device),
                       self.center_px.to(device))

    def __len__(self) -> int:
        return self.R.shape[0]


@dataclass
class ViewBatch:
    """One random view per pose: ``poses_cam_mm (b, 17, 3)``, ``poses_2d_px (b, 17, 2)``,
    ``boxes (b, 3)`` [cx, cy, side_px], ``joints_hm (b, 16, 2)`` MPII order in heatmap pixels."""

    poses_cam_mm: torch.Tensor
    poses_2d_px: torch.Tensor
    boxes: torch.Tensor
    joints_hm: torch.Tensor
    cams: Cameras


def _check_points(x: torch.Tensor, name: str, dim: int, joints: int | None = None) -> None:
    if x.ndim != 3 or x.shape[-1] != dim or (joints is not None and x.shape[1] != joints):
        want = f"(b, {joints if joints is not None else 'j'}, {dim})"
        raise ValueError(f"{name} has shape {tuple(x.shape)}, expected {want}")


def _uniform(lo_hi: tuple[float, float], b: int, generator: torch.Generator) -> torch.Tensor:
    lo, hi = lo_hi
    return lo + (hi - lo) * torch.rand(b, generator=generator, device=generator.device,
                                       dtype=torch.float64)


def _draw(pelvis: torch.Tensor, config: CameraConfig, generator: torch.Generator) -> Cameras:
    """Cameras aimed at ``pelvis: (b, 3)`` (+ jitter), float64 on the generator's device."""
    b = pelvis.shape[0]
    az = torch.deg2rad(_uniform(config.azimuth_deg, b, generator))
    el = torch.deg2rad(_uniform(config.elevation_deg, b, generator))
    roll = torch.deg2rad(_uniform(config.roll_deg, b, generator))
    dist = _uniform(config.distance_m, b, generator)
    focal = _uniform(config.focal_px, b, generator)
    j = config.target_jitter_m
    target = pelvis + (2 * torch.rand(b, 3, generator=generator, device=generator.device,
                                      dtype=torch.float64) - 1) * j
    c = config.center_jitter_px
    center = config.image_px / 2 + (2 * torch.rand(b, 2, generator=generator,
                                                   device=generator.device,
                                                   dtype=torch.float64) - 1) * c
    # Camera centre on a sphere around the target; forward looks back at it.
    back = torch.stack([el.cos() * az.cos(), el.cos() * az.sin(), el.sin()], dim=-1)
    position = target + dist[:, None] * back
    z_axis = -back
    up = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64, device=back.device).expand_as(back)
    x_axis = torch.linalg.cross(z_axis, up)
    x_axis = x_axis / x_axis.norm(dim=-1, keepdim=True)
    y_axis = torch.linalg.cross(z_axis, x_axis)  # points down in the image
    r_look = torch.stack([x_axis, y_axis, z_axis], dim=1)  # rows = camera axes in world
    cr, sr = roll.cos(), roll.sin()
    zero, one = torch.zeros_like(cr), torch.ones_like(cr)
    r_roll = torch.stack([torch.stack([cr, -sr, zero], -1), torch.stack([sr, cr, zero], -1),
                          torch.stack([zero, zero, one], -1)], dim=1)
    R = r_roll @ r_look
    t = -torch.einsum("bij,bj->bi", R, position)
    return Cameras(R, t, focal, center)


def random_cameras(poses_m: torch.Tensor, config: CameraConfig,
                   generator: torch.Generator) -> Cameras:
    """One random camera per pose, aimed at its pelvis; every joint ends up at depth > 0.5 m.

    poses_m: (b, 17, 3) world metres. Returns :class:`Cameras` on ``poses_m``'s device and dtype.
    Cameras that would put a joint closer than 0.5 m are redrawn (deterministically).
    """
    _check_points(poses_m, "random_cameras: poses_m", 3, N_H36M)
    pts = poses_m.detach().to(device=generator.device, dtype=torch.float64)
    pelvis = pts[:, 0]
    cams = _draw(pelvis, config, generator)
    for _ in range(_MAX_REDRAWS):
        bad = (world_to_camera(pts, cams)[..., 2] <= _MIN_DEPTH_M).any(dim=1)
        if not bad.any():
            break
        new = _draw(pelvis, config, generator)
        for name in ("R", "t_m", "focal_px", "center_px"):
            getattr(cams, name)[bad] = getattr(new, name)[bad]
    else:
        raise ValueError(f"random_cameras: could not place cameras with all joints deeper than "
                         f"{_MIN_DEPTH_M} m after {_MAX_REDRAWS} redraws; increase distance_m "
                         f"(got {config.distance_m})")
    dev, dt = poses_m.device, poses_m.dtype
    return Cameras(cams.R.to(dev, dt), cams.t_m.to(dev, dt), cams.focal_px.to(dev, dt),
                   cams.center_px.to(dev, dt))


def _check_cams(cams: Cameras, b: int, fn: str) -> None:
    if cams.R.shape != (b, 3, 3) or cams.t_m.shape != (b, 3) or cams.focal_px.shape != (b,) \
            or cams.center_px.shape != (b, 2):
        raise ValueError(f"{fn}: cameras have shapes R {tuple(cams.R.shape)}, "
                         f"t_m {tuple(cams.t_m.shape)}, focal_px {tuple(cams.focal_px.shape)}, "
                         f"center_px {tuple(cams.center_px.shape)}; "
                         f"expected ({b}, 3, 3), ({b}, 3), ({b},), ({b}, 2)")


def world_to_camera(poses_m: torch.Tensor, cams: Cameras) -> torch.Tensor:
    """poses_m: (b, j, 3) world -> (b, j, 3) camera frame, same units (metres)."""
    _check_points(poses_m, "world_to_camera: poses_m", 3)
    _check_cams(cams, poses_m.shape[0], "world_to_camera")
    return torch.einsum("bik,bjk->bji", cams.R, poses_m) + cams.t_m[:, None, :]


def project(poses_cam_m: torch.Tensor, cams: Cameras) -> torch.Tensor:
    """Pinhole projection: poses_cam_m (b, j, 3) -> poses_2d_px (b, j, 2)."""
    _check_points(poses_cam_m, "project: poses_cam_m", 3)
    _check_cams(cams, poses_cam_m.shape[0], "project")
    xy = poses_cam_m[..., :2] / poses_cam_m[..., 2:]
    return cams.focal_px[:, None, None] * xy + cams.center_px[:, None, :]


def crop_boxes(poses_2d_px: torch.Tensor, scale: float = 1.2) -> torch.Tensor:
    """Square person crops ``(b, 3)`` = [cx, cy, side_px]: the joints' bounding box centre and
    ``side = max(w, h) * scale``. poses_2d_px: (b, j, 2)."""
    _check_points(poses_2d_px, "crop_boxes: poses_2d_px", 2)
    lo, hi = poses_2d_px.amin(dim=1), poses_2d_px.amax(dim=1)
    centre = (lo + hi) / 2
    side = (hi - lo).amax(dim=-1, keepdim=True) * scale
    return torch.cat([centre, side], dim=-1)


def _check_boxes(points: torch.Tensor, boxes: torch.Tensor, fn: str) -> None:
    _check_points(points, f"{fn}: points_px", 2)
    if boxes.shape != (points.shape[0], 3):
        raise ValueError(f"{fn}: boxes has shape {tuple(boxes.shape)}, "
                         f"expected ({points.shape[0]}, 3)")


def to_heatmap_px(points_px: torch.Tensor, boxes: torch.Tensor,
                  heatmap_size: int = 64) -> torch.Tensor:
    """Image pixels -> heatmap pixel units: ``u = (x - (cx - side/2)) / side * size - 0.5``.

    points_px: (b, j, 2); boxes: (b, 3) [cx, cy, side]. Returns (b, j, 2).
    """
    _check_boxes(points_px, boxes, "to_heatmap_px")
    corner = boxes[:, None, :2] - boxes[:, None, 2:] / 2
    return (points_px - corner) / boxes[:, None, 2:] * heatmap_size - 0.5


def from_heatmap_px(points_hm: torch.Tensor, boxes: torch.Tensor,
                    heatmap_size: int = 64) -> torch.Tensor:
    """Inverse of :func:`to_heatmap_px`: heatmap pixel units (b, j, 2) -> image pixels (b, j, 2)."""
    _check_boxes(points_hm, boxes, "from_heatmap_px")
    corner = boxes[:, None, :2] - boxes[:, None, 2:] / 2
    return (points_hm + 0.5) / heatmap_size * boxes[:, None, 2:] + corner


def make_views(
    poses_m: torch.Tensor,
    config: CameraConfig,
    generator: torch.Generator,
    bone_scales: torch.Tensor | None = None,
    heatmap_size: int = 64,
) -> ViewBatch:
    """Random view of each world pose: optional bone scaling (:func:`data.scale_bones`), a random
    camera (its azimuth is the random rotation about world Z), projection, crop, heatmap coords.

    poses_m: (b, 17, 3) world metres; bone_scales: (b, 16) or (b, 1).
    """
    _check_points(poses_m, "make_views: poses_m", 3, N_H36M)
    if bone_scales is not None:
        poses_m = scale_bones(poses_m, bone_scales)
    # Keep the pelvis at the hip midpoint exactly (the metrics assume it).
    poses_m = torch.cat([(poses_m[:, R_HIP:R_HIP + 1] + poses_m[:, L_HIP:L_HIP + 1]) / 2,
                         poses_m[:, 1:]], dim=1)
    cams = random_cameras(poses_m, config, generator)
    poses_cam_m = world_to_camera(poses_m, cams)
    poses_2d_px = project(poses_cam_m, cams)
    boxes = crop_boxes(poses_2d_px, config.crop_scale)
    joints_hm = to_heatmap_px(poses_2d_px[:, list(H36M_TO_MPII)], boxes, heatmap_size)
    return ViewBatch(poses_cam_m * 1000.0, poses_2d_px, boxes, joints_hm, cams)

