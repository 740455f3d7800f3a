"""Training and test samples: mocap pose -> random camera -> simulated heatmaps (notebooks 01-02).

This is where the embedded data become what the model sees: a real mocap pose,
its bones rescaled a little, looked at by a random realistic camera, cropped like
the paper (1.2x joint bounding box) and turned into detector-like heatmaps.  The
training stream draws a fresh camera and fresh heatmap noise for every sample; a
test set is the same recipe with a fixed seed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .cameras import CameraConfig, make_views
from .data import random_bone_scales
from .heatmaps import HeatmapConfig, h36ma_ambiguous, simulate_heatmaps
from .skeleton import H36M_TO_MPII

__all__ = ["SampleBatch", "make_batch", "TrainStream", "make_test_set"]


@dataclass
class SampleBatch:
    """One batch of samples.

    heatmaps: (b, 16, 64, 64); poses_3d_mm: (b, 17, 3) camera frame; poses_2d_px: (b, 17, 2);
    boxes: (b, 3) crop [cx, cy, side]; joints_hm: (b, 16, 2) true joints in heatmap pixels;
    ambiguous_joints: (b, 16) joints the simulator made ambiguous; ambiguous: (b,) the H36MA rule.
    """

    heatmaps: torch.Tensor
    poses_3d_mm: torch.Tensor
    poses_2d_px: torch.Tensor
    boxes: torch.Tensor
    joints_hm: torch.Tensor
    ambiguous_joints: torch.Tensor
    ambiguous: torch.Tensor

    def __len__(self) -> int:
        return self.heatmaps.shape[0]

    def to(self, device: torch.device | str) -> "SampleBatch":
        return SampleBatch(**{k: v.to(device) for k, v in vars(self).items()})

    def subset(self, index: torch.Tensor | slice) -> "SampleBatch":
        return SampleBatch(**{k: v[index] for k, v in vars(self).items()})


def make_batch(poses_m: torch.Tensor, generator: torch.Generator,
               camera_config: CameraConfig = CameraConfig(),
               heatmap_config: HeatmapConfig = HeatmapConfig(),
               bone_scaling: bool = True) -> SampleBatch:
    """World poses ``(b, 17, 3)`` metres -> a :class:`SampleBatch` on the poses' device."""
    if poses_m.dim() != 3 or poses_m.shape[1:] != (17, 3):
        raise ValueError(f"poses_m must have shape (b, 17, 3), got {tuple(poses_m.shape)}")
    scales = (random_bone_scales(poses_m.shape[0], generator, device=poses_m.device)
              if bone_scaling else None)
    views = make_views(poses_m, camera_config, generator, bone_scales=scales)
    depth_mm = views.poses_cam_mm[:, list(H36M_TO_MPII), 2]
    sim = simulate_heatmaps(views.joints_hm, depth_mm, heatmap_config, generator)
    return SampleBatch(heatmaps=sim.heatmaps, poses_3d_mm=views.poses_cam_mm,
                       poses_2d_px=views.poses_2d_px, boxes=views.boxes, joints_hm=views.joints_hm,
                       ambiguous_joints=sim.ambiguous, ambiguous=h36ma_ambiguous(sim.heatmaps))


class TrainStream:
    """An endless, seeded stream of training batches drawn from ``poses_m: (n, 17, 3)``."""

    def __init__(self, poses_m: np.ndarray | torch.Tensor, seed: int = 0,
                 camera_config: CameraConfig = CameraConfig(),
                 heatmap_config: HeatmapConfig = HeatmapConfig(),
                 device: torch.device | str = "cpu") -> None:
        poses = torch.as_tensor(np.asarray(poses_m), dtype=torch.float32)
        if poses.dim() != 3 or poses.shape[1:] != (17, 3) or poses.shape[0] == 0:
            raise ValueError(f"poses_m must have shape (n>0, 17, 3), got {tuple(poses.shape)}")
        self.device = torch.device(device)
        self.poses = poses.to(self.device)
        self.camera_config, self.heatmap_config = camera_config, heatmap_config
        self.generator = torch.Generator(device=self.device).manual_seed(seed)

    def next_batch(self, batch_size: int) -> SampleBatch:
        idx = torch.randint(0, self.poses.shape[0], (batch_size,), generator=self.generator,
                            device=self.device)
        return make_batch(self.poses[idx], self.generator, self.camera_config, self.heatmap_config)


def make_test_set(poses_m: np.ndarray | torch.Tensor, n: int | None = None, seed: int = 1234,
                  camera_config: CameraConfig = CameraConfig(),
                  heatmap_config: HeatmapConfig = HeatmapConfig(), chunk: int = 512) -> SampleBatch:
    """A fixed test set: ``n`` poses evenly spaced over ``poses_m`` (all if None), one camera each.

    Deterministic for a given seed; built on the CPU in chunks.
    """
    poses = torch.as_tensor(np.asarray(poses_m), dtype=torch.float32)
    if poses.dim() != 3 or poses.shape[1:] != (17, 3) or poses.shape[0] == 0:
        raise ValueError(f"poses_m must have shape (n>0, 17, 3), got {tuple(poses.shape)}")
    if n is not None:
        idx = torch.linspace(0, poses.shape[0] - 1, min(n, poses.shape[0])).round().long()
        poses = poses[idx]
    gen = torch.Generator().manual_seed(seed)
    parts = [make_batch(poses[i:i + chunk], gen, camera_config, heatmap_config, bone_scaling=False)
             for i in range(0, poses.shape[0], chunk)]
    return SampleBatch(**{k: torch.cat([getattr(p, k) for p in parts]) for k in vars(parts[0])})
