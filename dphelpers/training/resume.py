"""Saving and resuming the training states of a group of models: the one rule every run follows
(:func:`~dphelpers.training.train.fit_group`, notebook 04).

Every model's whole :class:`~dphelpers.training.state.TrainState` goes to its own file, with
its training settings and, when the models draw from their own streams, the shared batch
stream; a group resumes all together from one step or not at all, and a file written for
another model or other settings is refused (:func:`~dphelpers.models.checkpoint.check_config`).
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from ..models.checkpoint import CheckpointError, check_config, read_checkpoint, write_checkpoint
from ..pipeline import TrainStream

__all__ = ["snapshot_file", "resume_group", "save_group"]


def snapshot_file(checkpoint: str | Path, step: int) -> Path:
    """Where :func:`fit` keeps the state at ``step``: ``runs/x.pt`` -> ``runs/x.step5000.pt``."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(f"{checkpoint.stem}.step{step}{checkpoint.suffix}")


def resume_group(states: dict, checkpoints: dict, stream: TrainStream, own_streams: bool,
                 replicas) -> int:
    """Load every existing checkpoint (all or none, all at one step; with ``own_streams`` the
    shared batch stream too); returns the step they hold (0: none).  ``replicas``: a
    :class:`~dphelpers.training.train.Replicas` (how the run is spread over processes)."""
    files = {n: Path(p) for n, p in checkpoints.items() if p is not None}
    present = {n: p for n, p in files.items() if p.is_file()}
    if not present:
        return 0
    if len(present) != len(files):
        missing = sorted(set(files) - set(present))
        raise CheckpointError(f"fit: checkpoints exist for {sorted(present)} but not for "
                              f"{missing}: the models share one stream and resume together; "
                              "move the existing files away to start afresh")
    saved = {n: read_checkpoint(p) for n, p in present.items()}
    steps = {n: int(s["step"]) for n, s in saved.items()}
    if len(set(steps.values())) > 1:
        raise CheckpointError(f"fit: the checkpoints stopped at different steps {steps} "
                              f"({ {n: str(p) for n, p in present.items()} }); they resume "
                              "together only from one step")
    if own_streams and any(s.get("stream_rng") is None for s in saved.values()):
        bad = sorted(n for n, s in saved.items() if s.get("stream_rng") is None)
        raise CheckpointError(f"fit: {[str(present[n]) for n in bad]} lack 'stream_rng': "
                              "written by a single-model run, not by fit_many")
    for name, state_saved in saved.items():
        check_config(state_saved, states[name].model.config, present[name])
        replicas.check_resume(state_saved, present[name])
        states[name].load_state_dict(state_saved, replicas.rank)
    if own_streams:
        stream.set_rng_state(next(iter(saved.values()))["stream_rng"])
    return next(iter(steps.values()))


def save_group(states: dict, configs: dict, checkpoints: dict, stream: TrainStream | None,
               replicas, regular: int | None, snapshot: bool) -> None:
    """Write every model's checkpoint (``regular``: the step) and/or ``snapshot`` file; every
    process takes part (its random streams), only the main one writes."""
    stream_rng = {} if stream is None else {"stream_rng": stream.rng_state()}
    for name, state in states.items():
        if checkpoints[name] is None:
            continue
        rngs = replicas.rank_rngs(state)               # every process takes part
        if not replicas.is_main:
            continue
        payload = {**state.state_dict(rank_rngs=rngs), "train_config": asdict(configs[name]),
                   **stream_rng, **replicas.payload()}
        if regular is not None:
            write_checkpoint(checkpoints[name], state.model, payload)
        if snapshot:
            write_checkpoint(snapshot_file(checkpoints[name], state.step), state.model, payload)
