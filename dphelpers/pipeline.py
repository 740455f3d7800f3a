"""Training and test samples: mocap pose -> random camera -> simulated heatmaps (notebooks 01-02).

This is where the embedded data become what the model sees: a real mocap pose,
its bones rescaled a little, looked at by a random realistic camera, cropped like
the paper (1.2x joint bounding box) and turned into detector-like heatmaps.  The
training stream draws a fresh camera and fresh heatmap noise for every sample; a
test set is the same recipe with a fixed seed.  ``heatmap_config`` picks the simulator
(``HeatmapConfig.preset("v1")`` or ``"v2"``, see :mod:`dphelpers.heatmaps`); test sets that
differ only in ``p_keep_true_mode`` share their cameras and failures.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import InitVar, dataclass

import numpy as np
import torch

from .augment import AugmentConfig, augment_poses
from .cameras import CameraConfig, make_views
from .data import random_bone_scales
from .heatmaps import HeatmapConfig, h36ma_ambiguous, simulate_heatmaps
from .pckh import pckh_failures_own_head
from .skeleton import H36M_TO_MPII, MPII_FLIP_PAIRS

__all__ = ["SampleBatch", "LIMB_JOINTS", "make_batch", "TrainStream", "make_test_set"]

#: MPII joints with a left/right partner (shoulders, elbows, wrists, hips, knees, ankles).
LIMB_JOINTS: tuple[int, ...] = tuple(sorted(j for pair in MPII_FLIP_PAIRS for j in pair))
_SIMULATOR_FLAGS = ("inverted_joints", "jittered_joints", "missed_joints", "kept_true_mode",
                    "truncated_joints")


@dataclass
class SampleBatch:
    """One batch of samples.

    heatmaps: (b, 16, 64, 64); poses_3d_mm: (b, 17, 3) camera frame; poses_2d_px: (b, 17, 2);
    boxes: (b, 3) crop [cx, cy, side]; joints_hm: (b, 16, 2) true joints in heatmap pixels;
    ambiguous_joints: (b, 16) joints the simulator made ambiguous; ambiguous: (b,) the H36MA rule.

    Per-joint failure flags, all (b, 16) bool: failed_joints, the heatmap's argmax fails the
    PCKh@0.5 rule (:mod:`dphelpers.pckh`); inverted_joints / jittered_joints / missed_joints,
    the simulator put the peak on the partner / near / far off; kept_true_mode, such a failure
    keeps a weaker mode at the truth; truncated_joints, beyond the simulated image border.
    Left out (None), ``failed_joints`` is computed from the heatmaps and the others are False
    (e.g. stored or real heatmaps).

    ``lean=True`` (:class:`TrainStream`'s batches): ``ambiguous`` and ``failed_joints`` stay
    ``None``.  Both are functions of the heatmaps that training never reads, and computing them
    costs a fifth of a simulated batch on the CPU; :func:`make_batch` computes them.
    """

    heatmaps: torch.Tensor
    poses_3d_mm: torch.Tensor
    poses_2d_px: torch.Tensor
    boxes: torch.Tensor
    joints_hm: torch.Tensor
    ambiguous_joints: torch.Tensor
    ambiguous: torch.Tensor | None
    failed_joints: torch.Tensor | None = None
    inverted_joints: torch.Tensor | None = None
    jittered_joints: torch.Tensor | None = None
    missed_joints: torch.Tensor | None = None
    kept_true_mode: torch.Tensor | None = None
    truncated_joints: torch.Tensor | None = None
    lean: InitVar[bool] = False

    def __post_init__(self, lean: bool) -> None:
        if lean:
            if self.ambiguous is not None or self.failed_joints is not None:
                raise ValueError("a lean SampleBatch has ambiguous=None and failed_joints=None")
        else:
            if self.ambiguous is None:
                raise ValueError("SampleBatch.ambiguous is None; only a lean batch leaves it out")
            if self.failed_joints is None:
                self.failed_joints = pckh_failures_own_head(self.heatmaps, self.joints_hm)
        for name in _SIMULATOR_FLAGS:
            if getattr(self, name) is None:
                setattr(self, name, torch.zeros(self.joints_hm.shape[:2], dtype=torch.bool,
                                                device=self.joints_hm.device))

    @property
    def is_lean(self) -> bool:
        """True for a :class:`TrainStream` batch: no ``ambiguous`` / ``failed_joints``."""
        return self.failed_joints is None

    @property
    def failed_limb_sample(self) -> torch.Tensor:
        """(b,) bool: some limb joint's argmax fails PCKh@0.5 (the sampling-should-help set)."""
        if self.is_lean:
            raise ValueError("this batch is lean (a TrainStream batch) and carries no "
                             "failed_joints; build it with make_batch or make_test_set")
        return self.failed_joints[:, list(LIMB_JOINTS)].any(dim=1)

    def __len__(self) -> int:
        return self.heatmaps.shape[0]

    def _map(self, fn) -> "SampleBatch":
        return SampleBatch(**{k: None if v is None else fn(v) for k, v in vars(self).items()},
                           lean=self.is_lean)

    def to(self, device: torch.device | str) -> "SampleBatch":
        """A copy with every tensor field moved to ``device``."""
        return self._map(lambda v: v.to(device))

    def subset(self, index: torch.Tensor | slice) -> "SampleBatch":
        """The samples picked by ``index`` (a slice, indices or a ``(b,)`` bool mask) along the
        batch dimension of every field."""
        return self._map(lambda v: v[index])


def _checked_poses(poses_m: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``poses_m`` as a float32 CPU tensor ``(n > 0, 17, 3)`` with finite values, or a clear
    error (checked once here, so that the batches need no check on the device)."""
    poses = torch.as_tensor(np.asarray(poses_m), dtype=torch.float32)
    if poses.dim() != 3 or poses.shape[1:] != (17, 3) or poses.shape[0] == 0:
        raise ValueError(f"poses_m must have shape (n>0, 17, 3), got {tuple(poses.shape)}")
    bad = ~torch.isfinite(poses).all(dim=(1, 2))
    if bad.any():
        raise ValueError(f"poses_m holds NaN or inf in {int(bad.sum())} pose(s), the first at "
                         f"index {int(bad.nonzero()[0, 0])}")
    return poses


def make_batch(poses_m: torch.Tensor, generator: torch.Generator,
               camera_config: CameraConfig = CameraConfig(),
               heatmap_config: HeatmapConfig = HeatmapConfig(),
               bone_scaling: bool = True, lean: bool = False) -> SampleBatch:
    """World poses ``(b, 17, 3)`` metres -> a :class:`SampleBatch` on the poses' device.

    ``lean``: leave out ``ambiguous`` and ``failed_joints`` (see :class:`SampleBatch`); the
    random draws, heatmaps and every other field are the same."""
    if poses_m.dim() != 3 or poses_m.shape[1:] != (17, 3):
        raise ValueError(f"poses_m must have shape (b, 17, 3), got {tuple(poses_m.shape)}")
    scales = (random_bone_scales(poses_m.shape[0], generator, device=poses_m.device)
              if bone_scaling else None)
    views = make_views(poses_m, camera_config, generator, bone_scales=scales)
    depth_mm = views.poses_cam_mm[:, list(H36M_TO_MPII), 2]
    # the points come from make_views (finite poses, every joint > 0.5 m deep): no NaN check,
    # which on a GPU would read back from the device
    sim = simulate_heatmaps(views.joints_hm, depth_mm, heatmap_config, generator, flags=not lean,
                            validate=False)
    ambiguous = (None if lean
                 else h36ma_ambiguous(sim.heatmaps, heatmap_config.ambiguous_sigma_px))
    return SampleBatch(heatmaps=sim.heatmaps, poses_3d_mm=views.poses_cam_mm,
                       poses_2d_px=views.poses_2d_px, boxes=views.boxes, joints_hm=views.joints_hm,
                       ambiguous_joints=sim.ambiguous, ambiguous=ambiguous,
                       failed_joints=sim.failed, inverted_joints=sim.inverted,
                       jittered_joints=sim.jittered, missed_joints=sim.missed,
                       kept_true_mode=sim.kept_true_mode, truncated_joints=sim.truncated,
                       lean=lean)


class TrainStream:
    """An endless, seeded stream of training batches drawn from ``poses_m: (n, 17, 3)``.

    ``chunk``: batches simulated together in one call (one set of kernels for ``chunk``
    batches, then handed out one by one), so the simulator's fixed cost per call is paid once
    per chunk: on a GPU that cost is kernel launches.  ``chunk=1`` is the stream every shipped
    model was trained on; another chunk is another stream of batches (the same distribution,
    other draws), so a run keeps its chunk (``TrainConfig.stream_chunk``) and resumes exactly
    only from a chunk boundary (:func:`~dphelpers.training.train.fit` checks that checkpoints
    fall on one).
    Its batches are lean (:class:`SampleBatch`): training reads only the heatmaps and poses.
    ``augment``: an enabled :class:`~dphelpers.augment.AugmentConfig` changes every batch's
    poses (:func:`~dphelpers.augment.augment_poses`, same generator) before its camera and
    heatmaps are drawn; ``None`` or disabled draws nothing extra (the shipped models' stream).
    """

    def __init__(self, poses_m: np.ndarray | torch.Tensor, seed: int = 0,
                 camera_config: CameraConfig = CameraConfig(),
                 heatmap_config: HeatmapConfig = HeatmapConfig(),
                 device: torch.device | str = "cpu", chunk: int = 1,
                 augment: AugmentConfig | None = None) -> None:
        poses = _checked_poses(poses_m)
        self.device = torch.device(device)
        self.poses = poses.to(self.device)
        self.camera_config, self.heatmap_config = camera_config, heatmap_config
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        if augment is not None and not isinstance(augment, AugmentConfig):
            raise ValueError(f"augment must be an AugmentConfig or None, got "
                             f"{type(augment).__name__}")
        self.augment = augment if augment is not None else AugmentConfig()
        self.prefetch, self._pool, self._future, self._before = False, None, None, None
        self._pending_n = 0
        self.set_chunk(chunk)

    def set_chunk(self, chunk: int) -> None:
        """Simulate ``chunk`` batches per call from now on (drops batches not yet handed out)."""
        if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
            raise ValueError(f"chunk must be an int >= 1, got {chunk!r}")
        self._drain()
        self.chunk = chunk
        self._buffer: SampleBatch | None = None
        self._handed = 0

    def set_prefetch(self, on: bool) -> None:
        """``on``: simulate the next chunk in a background thread while the caller trains on
        this one.  The batches are the same as without; only nobody else may draw from
        :attr:`generator` meanwhile (the loss draws from a generator of its own).  Off: the
        pending chunk is dropped and the generator put back to the chunk boundary."""
        self._drain()
        self.prefetch = bool(on)
        if self.prefetch and self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="TrainStream")

    @property
    def pending(self) -> bool:
        """True while a prefetched chunk is simulated or waiting to be handed out."""
        return self._future is not None

    def wait_pending(self) -> None:
        """Block until the prefetched chunk (if any) is simulated; it stays pending, so the
        batches handed out next are unchanged."""
        if self._future is not None:
            self._future.result()

    def _simulate(self, n: int) -> SampleBatch:
        idx = torch.randint(0, self.poses.shape[0], (n,), generator=self.generator,
                            device=self.device)
        return make_batch(self._poses(idx), self.generator, self.camera_config,
                          self.heatmap_config, lean=True)

    def _launch(self, n: int) -> None:
        self._before, self._pending_n = self.generator.get_state(), n
        self._future = self._pool.submit(self._simulate, n)

    def _drain(self) -> None:
        """Wait for a pending chunk, drop it and rewind the generator to before it."""
        if self._future is not None:
            self._future.result()
            self.generator.set_state(self._before)
            self._future = None

    def rng_state(self) -> torch.Tensor:
        """The generator's state as of the batches handed out (a pending chunk not counted)."""
        return (self._before if self._future is not None else self.generator.get_state()).clone()

    def set_rng_state(self, state: torch.Tensor) -> None:
        """Continue from :meth:`rng_state` (at a chunk boundary); drops simulated batches."""
        self._drain()
        self._buffer, self._handed = None, 0
        self.generator.set_state(state)

    @property
    def at_chunk_boundary(self) -> bool:
        """True when every simulated batch has been handed out (the state a checkpoint keeps)."""
        return self._buffer is None or self._handed == self.chunk

    def _poses(self, idx: torch.Tensor) -> torch.Tensor:
        return augment_poses(self.poses[idx], self.generator, self.augment)

    def next_batch(self, batch_size: int) -> SampleBatch:
        """The stream's next :class:`SampleBatch` of ``batch_size`` samples on its device:
        poses drawn uniformly with replacement, then (augmented,) viewed and simulated."""
        if self.chunk == 1 and not self.prefetch:
            return self._simulate(batch_size)
        n = self.chunk * batch_size
        if self.at_chunk_boundary or len(self._buffer) != n:
            self._buffer, self._handed = self._next_chunk(n), 0
        start = self._handed * batch_size
        self._handed += 1
        return self._buffer.subset(slice(start, start + batch_size))

    def _next_chunk(self, n: int) -> SampleBatch:
        """``n`` new samples: simulated now, or (prefetching) the pending chunk, whose successor
        is then launched."""
        if not self.prefetch:
            return self._simulate(n)
        if self._future is None or self._pending_n != n:
            self._drain()
            self._launch(n)
        chunk, self._future = self._future.result(), None
        self._launch(n)
        return chunk


def make_test_set(poses_m: np.ndarray | torch.Tensor, n: int | None = None, seed: int = 1234,
                  camera_config: CameraConfig = CameraConfig(),
                  heatmap_config: HeatmapConfig = HeatmapConfig(), chunk: int = 512) -> SampleBatch:
    """A fixed test set: ``n`` poses evenly spaced over ``poses_m`` (all if None), one camera each.

    Deterministic for a given seed; built on the CPU in chunks.  ``heatmap_config`` picks the
    simulator, e.g. ``HeatmapConfig.preset("v2", p_keep_true_mode=0.0)``; sets built with the
    same seed and configs that differ only in ``p_keep_true_mode`` have the same poses,
    cameras and failures, and differ only in which failures keep a mode at the truth.
    """
    if not isinstance(heatmap_config, HeatmapConfig):
        raise ValueError("heatmap_config must be a HeatmapConfig, got "
                         f"{type(heatmap_config).__name__}")
    poses = _checked_poses(poses_m)
    if n is not None:
        idx = torch.linspace(0, poses.shape[0] - 1, min(n, poses.shape[0])).round().long()
        poses = poses[idx]
    gen = torch.Generator().manual_seed(seed)
    parts = [make_batch(poses[i:i + chunk], gen, camera_config, heatmap_config, bone_scaling=False)
             for i in range(0, poses.shape[0], chunk)]
    return SampleBatch(**{k: torch.cat([getattr(p, k) for p in parts]) for k in vars(parts[0])})
