"""The labelled phases of a training step, timed where they run (notebook 04's profile).

:func:`phase` labels a part of :func:`~dphelpers.training.train.train_step` for
``torch.profiler`` (``record_function``) and, while a :class:`PhaseClock` is attached to the
state, times it: on CUDA with a pair of CUDA events on the current stream, so the time is the
GPU's, read only once at the end (no synchronisation inside the step); elsewhere with the
host's clock.  A profiler's ``record_function`` ranges are host-side, so on a GPU they say
when the kernels were launched, not how long they ran.
"""
from __future__ import annotations

import contextlib
import time

import torch
from torch.profiler import record_function

__all__ = ["PhaseClock", "phase"]


class PhaseClock:
    """Per-phase time over many steps: ``with clock.time(name): ...``, then :meth:`totals_ms`.

    On a CUDA ``device`` each phase is the GPU time between an event recorded as it starts and
    one as it ends (kernels still queued from earlier phases count where they run, which is
    what the GPU spends); on the CPU it is wall time.  Nested phases count in both.
    """

    def __init__(self, device: torch.device | str) -> None:
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self._marks: list[tuple[str, object, object]] = []

    def _mark(self):
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    @contextlib.contextmanager
    def time(self, name: str):
        """Time the block as phase ``name`` (added to earlier blocks of that name)."""
        start = self._mark()
        try:
            yield
        finally:
            self._marks.append((name, start, self._mark()))

    def totals_ms(self) -> dict[str, float]:
        """Milliseconds per phase name, summed over every timed block (waits for the GPU)."""
        if self.cuda:
            torch.cuda.synchronize(self.device)
        totals: dict[str, float] = {}
        for name, start, end in self._marks:
            ms = start.elapsed_time(end) if self.cuda else (end - start) * 1000.0
            totals[name] = totals.get(name, 0.0) + ms
        return totals


@contextlib.contextmanager
def phase(name: str, clock: PhaseClock | None = None):
    """Label the block ``name`` for the profiler and, given a ``clock``, time it."""
    with record_function(name):
        if clock is None:
            yield
        else:
            with clock.time(name):
                yield
