"""The single-hypothesis baseline: Martinez et al.'s "simple baseline" lifter (ICCV 2017).

A practitioner with a heatmap detector and no diffusion model takes the ARGMAX of each of
the 16 MPII heatmaps and lifts those 2D joints to 3D with a small residual MLP
(REFERENCE.md "Single-hypothesis baseline"):

    2D joints (b, 32) -> Linear 1024 [-> BN, ReLU, dropout]
      -> n_blocks x (x + 2 x (Linear 1024, BN, ReLU, dropout 0.5)) -> Linear 48 = x0

Choices, each a :class:`LifterConfig` field:

- Input: the argmax pixel of each clamped heatmap (ties and all-zero maps: the first pixel,
  as candidate 0 of :func:`~dphelpers.candidates.sample_candidates`) in the normalised
  heatmap coordinates ``x = col/32 - 1``, ``y = row/32 - 1``, reordered from MPII to
  Human3.6M order (:data:`LIFTER_INPUT_MPII`); no further standardisation (the values are
  already crop-relative and in [-1, 1); the first Linear and batch norm absorb any
  per-input affine map).
- Target and output: exactly DiffPose's (``poses_to_x0`` / ``x0_to_poses``: 16 non-pelvis
  joints, metres, centred per axis, times ``pose_scale``), so both models are scored alike.
- ``stem_block``: the authors' code follows the input Linear by BN, ReLU and dropout; the
  paper's figure draws a plain Linear.  Default True (the code, which produced 62.9 mm).
- Max-norm (:meth:`Lifter.after_step`): after every optimizer step each output unit's
  incoming weight vector (each ROW of every ``nn.Linear.weight``, shape (out, in); input
  and output layers included, biases not) is rescaled to L2 norm <= ``max_norm``: the
  max-norm of Srivastava et al. (2014) that goes with dropout.  The paper only says "the
  maximum norm of each layer's weights is <= 1"; the authors' code clips the WHOLE
  matrix's norm inside the forward pass (a reparametrisation, mostly a rescaling ahead of
  batch norm).  A post-step projection of the whole matrix to norm 1 would shrink a
  Kaiming-initialised 1024 x 1024 matrix ~45x and make Adam's ~1e-3 steps as large as its
  entries, hence rows.  Weights are Kaiming-normal (fan-in, ReLU) with zero biases, then
  projected once, so the constraint holds from step 0.
- Learning rate: Adam 1e-3 multiplied by ``lr_decay_per_1k_steps`` = 0.96 after every
  1,000 steps (a staircase: :func:`dphelpers.models.modelfiles.train_config` hands both to
  :class:`~dphelpers.training.train.TrainConfig`, whose ``lr_at`` the training step applies): 0.13x
  after our ~50k steps, the same overall decay as the authors' 0.96 per 100k steps over
  their ~4.9M (200 epochs of ~1.56M poses at batch 64); their rate itself would be a
  negligible 0.98x here.

Dropout draws its masks from ``generator`` when given (else the global RNG), so a seeded
training step is reproducible.  Notebook: none yet (meant for 05, beside DiffPose's evaluation).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from einops import rearrange, repeat
from torch import nn
from torch.nn import functional as F

from .candidates import pixels_to_coords, validate_heatmaps
from .configs import from_dict
from .precision import resolve_autocast
from .skeleton import N_MPII
from .targets import poses_to_x0, x0_to_poses

__all__ = ["LIFTER_INPUT_MPII", "LifterConfig", "Lifter", "argmax_joints"]

#: The lifter's 16 input joints in Human3.6M-17 order (Neck/Nose has no MPII joint): input
#: joint k is MPII joint ``LIFTER_INPUT_MPII[k]``, i.e. Pelvis, RHip, RKnee, RAnkle, LHip,
#: LKnee, LAnkle, Spine (MPII thorax), Thorax (upper neck), Head (head top), LShoulder,
#: LElbow, LWrist, RShoulder, RElbow, RWrist: ``H36M_TO_MPII`` sorted by H36M index.
LIFTER_INPUT_MPII: tuple[int, ...] = (6, 2, 1, 0, 3, 4, 5, 7, 8, 9, 13, 14, 15, 12, 11, 10)


@dataclass(frozen=True)
class LifterConfig:
    """Settings of the lifter and its optimiser; a checkpoint stores ``to_dict()``."""

    hidden: int = 1024
    n_blocks: int = 2
    dropout: float = 0.5
    batch_norm: bool = True
    stem_block: bool = True                 # BN, ReLU, dropout after the input Linear
    max_norm: float | None = 1.0            # per-row L2 bound of every Linear weight; None: off
    pose_scale: float = 10.0                # network units = metres x pose_scale (as DiffPose)
    lr: float = 1e-3
    lr_decay_per_1k_steps: float = 0.96     # lr x this after every 1,000 steps
                                            # (TrainConfig.lr_decay)

    def __post_init__(self) -> None:
        for name, low in (("hidden", 1), ("n_blocks", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"LifterConfig.{name} must be an int >= {low}, got {value!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"LifterConfig.dropout must be in [0, 1), got {self.dropout!r}")
        if self.max_norm is not None and not self.max_norm > 0:
            raise ValueError(f"LifterConfig.max_norm must be > 0 or None, got {self.max_norm!r}")
        for name in ("pose_scale", "lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"LifterConfig.{name} must be > 0, got {getattr(self, name)!r}")
        if not 0.0 < self.lr_decay_per_1k_steps <= 1.0:
            raise ValueError("LifterConfig.lr_decay_per_1k_steps must be in (0, 1], "
                             f"got {self.lr_decay_per_1k_steps!r}")

    def to_dict(self) -> dict:
        """All settings as a plain dict (``dataclasses.asdict``), as stored in a checkpoint."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "LifterConfig":
        """Inverse of ``to_dict``; an unknown key is an error naming it
        (:func:`~dphelpers.configs.from_dict`)."""
        return from_dict(cls, d)


def argmax_joints(heatmaps: torch.Tensor) -> torch.Tensor:
    """``heatmaps: (b, 16, 64, 64)`` -> argmax joints ``(b, 16, 2)`` (x, y), MPII order.

    ``x = col/32 - 1``, ``y = row/32 - 1`` of each clamped map's first maximal pixel: the
    argmax candidate of :func:`~dphelpers.candidates.sample_candidates`.
    """
    hm = validate_heatmaps(heatmaps).clamp_min(0.0)
    size = hm.shape[-1]
    index = rearrange(hm, "b j h w -> b j (h w)").argmax(dim=-1)
    row, col = index // size, index % size
    return torch.stack([pixels_to_coords(col, size), pixels_to_coords(row, size)], dim=-1)


def _dropout(x: torch.Tensor, p: float, training: bool,
             generator: torch.Generator | None) -> torch.Tensor:
    """Inverted dropout whose mask comes from ``generator`` (the global RNG when None)."""
    if not training or p == 0.0:
        return x
    keep = torch.rand(x.shape, device=x.device, generator=generator) >= p
    return x * keep.to(x.dtype) * (1.0 / (1.0 - p))


class _Unit(nn.Module):
    """Linear -> batch norm -> ReLU -> dropout: ``(b, d_in) -> (b, d_out)``."""

    def __init__(self, d_in: int, d_out: int, config: LifterConfig) -> None:
        super().__init__()
        self.linear = nn.Linear(d_in, d_out)
        self.norm = nn.BatchNorm1d(d_out) if config.batch_norm else nn.Identity()
        self.p = config.dropout

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return _dropout(F.relu(self.norm(self.linear(x))), self.p, self.training, generator)


class _Residual(nn.Module):
    """``x + unit2(unit1(x))``: ``(b, hidden) -> (b, hidden)``."""

    def __init__(self, config: LifterConfig) -> None:
        super().__init__()
        self.units = nn.ModuleList([_Unit(config.hidden, config.hidden, config) for _ in range(2)])

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        y = x
        for unit in self.units:
            y = unit(y, generator)
        return x + y


class Lifter(nn.Module):
    """Martinez et al.'s lifter with DiffPose's training/evaluation interface.

    ``loss`` and ``sample`` take the same heatmaps and poses as
    :class:`~dphelpers.diffusion.DiffPose`; ``sample`` repeats the single prediction
    ``n_hypo`` times.  The training loop should call :meth:`after_step` after each
    optimizer step (:func:`~dphelpers.training.train.train_step` does).
    """

    kind = "lifter"

    def __init__(self, config: LifterConfig | None = None) -> None:
        super().__init__()
        self.config = config = LifterConfig() if config is None else config
        self.register_buffer("input_joints", torch.tensor(LIFTER_INPUT_MPII), persistent=False)
        d_in, d_out = 2 * N_MPII, 3 * N_MPII
        self.stem = (_Unit(d_in, config.hidden, config) if config.stem_block
                     else nn.Linear(d_in, config.hidden))
        self.blocks = nn.ModuleList([_Residual(config) for _ in range(config.n_blocks)])
        self.head = nn.Linear(config.hidden, d_out)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)
        self.after_step()

    @property
    def device(self) -> torch.device:
        """The device the model lives on, read from the ``input_joints`` buffer."""
        return self.input_joints.device

    @torch.no_grad()
    def after_step(self) -> None:
        """Max-norm: rescale each row of every Linear weight to L2 norm <= ``config.max_norm``."""
        if self.config.max_norm is None:
            return
        for m in self.modules():
            if isinstance(m, nn.Linear):
                m.weight.copy_(torch.renorm(m.weight, p=2, dim=0, maxnorm=self.config.max_norm))

    def inputs(self, heatmaps: torch.Tensor) -> torch.Tensor:
        """``heatmaps: (b, 16, 64, 64)`` -> network input ``(b, 32)``: argmax (x, y) per joint,
        in :data:`LIFTER_INPUT_MPII` order."""
        joints = argmax_joints(heatmaps.to(self.device))[:, self.input_joints]
        return rearrange(joints, "b j c -> b (j c)")

    def forward(self, inputs: torch.Tensor,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """``inputs: (b, 32)`` -> ``x0: (b, 48)`` in network units; dropout masks from
        ``generator``."""
        if inputs.dim() != 2 or inputs.shape[1] != 2 * N_MPII:
            raise ValueError(f"inputs must have shape (b, {2 * N_MPII}), got {tuple(inputs.shape)}")
        if self.training and self.config.batch_norm and inputs.shape[0] < 2:
            raise ValueError(f"batch norm needs a batch of >= 2 in training mode, "
                             f"got {inputs.shape[0]}")
        h = (self.stem(inputs, generator) if isinstance(self.stem, _Unit)
             else self.stem(inputs))
        for block in self.blocks:
            h = block(h, generator)
        return self.head(h)

    def loss(self, heatmaps: torch.Tensor, poses_3d_mm: torch.Tensor,
             generator: torch.Generator | None = None, **ignored) -> torch.Tensor:
        """Mean squared error in network units between the prediction from ``heatmaps:
        (b, 16, 64, 64)`` and ``poses_3d_mm: (b, 17, 3)`` (DiffPose's extra keywords ignored)."""
        x = self.inputs(heatmaps)
        x0 = poses_to_x0(poses_3d_mm.to(self.device), self.config.pose_scale)
        if x.shape[0] != x0.shape[0]:
            raise ValueError(f"heatmaps batch {x.shape[0]} != poses batch {x0.shape[0]}")
        return F.mse_loss(self(x, generator).float(), x0)

    @torch.no_grad()
    def predict(self, heatmaps: torch.Tensor,
                autocast_dtype: torch.dtype | str | None = None) -> torch.Tensor:
        """``heatmaps: (b, 16, 64, 64)`` -> ``(b, 17, 3)`` mm, root-relative, in eval mode
        (the module's train/eval mode is restored afterwards)."""
        dtype = resolve_autocast(autocast_dtype, self.device)
        ctx = (torch.autocast(self.device.type, dtype=dtype) if dtype is not None
               else torch.autocast(self.device.type, enabled=False))
        was_training = self.training
        self.eval()
        try:
            with ctx:
                x0 = self(self.inputs(heatmaps))
        finally:
            self.train(was_training)
        return x0_to_poses(x0.float(), self.config.pose_scale)

    @torch.no_grad()
    def sample(self, heatmaps: torch.Tensor, n_hypo: int = 1,
               generator: torch.Generator | None = None,
               autocast_dtype: torch.dtype | str | None = None, **ignored) -> torch.Tensor:
        """DiffPose's ``sample``: ``(b, n_hypo, 17, 3)`` mm, the single prediction repeated.

        ``generator`` is unused (the prediction is deterministic); other keywords are ignored,
        except ``return_trajectory=True``, an error (there is no denoising trajectory).
        """
        if isinstance(n_hypo, bool) or not isinstance(n_hypo, int) or n_hypo < 1:
            raise ValueError(f"n_hypo must be an int >= 1, got {n_hypo!r}")
        if ignored.get("return_trajectory"):
            raise ValueError("Lifter.sample has no trajectory: return_trajectory must be False")
        return repeat(self.predict(heatmaps, autocast_dtype), "b j c -> b h j c", h=n_hypo)
