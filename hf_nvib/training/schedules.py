"""KL-weight annealing schedules.

A schedule maps an optimizer step and the total number of steps to a weight in ``[0, value]``.
It depends on nothing else, so a run resumed from a checkpoint (same ``global_step`` and
``max_steps``) sees exactly the weights of an uninterrupted run.

Kinds (``T`` = total steps, ``s``/``e`` = ``start``/``end`` fractions, ``v`` = ``value``):

* ``constant``: ``v`` at every step.
* ``linear``: ``0`` for ``step < s·T``, ``v`` for ``step >= e·T``, ``v·x`` in between with
  ``x = (step − s·T) / ((e − s)·T)``.
* ``cosine`` (monotonic): same ramp, ``v·(1 − cos(π·x)) / 2`` in between.
* ``cyclical`` (Fu et al. 2019, "Cyclical annealing schedule"): the window ``[s·T, e·T)`` is cut
  into ``cycles`` equal cycles; within each, the weight ramps from 0 to ``v`` over the first
  ``ratio`` of the cycle (linear or cosine ``shape``) and stays at ``v`` for the rest. ``0``
  before the window and ``v`` after it. With the defaults ``s = 0, e = 1`` this is Fu et al.'s
  ``β_t = f(τ)`` for ``τ ≤ R``, else 1, with ``τ = mod(t, T/M) / (T/M)`` and ``t`` the 0-based
  step (their ``t − 1``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["SCHEDULE_KINDS", "KLSchedule", "parse_schedule"]

SCHEDULE_KINDS = ("constant", "linear", "cosine", "cyclical")
_SHAPES = ("linear", "cosine")


def _ramp(x: float, shape: str) -> float:
    """Monotonic map of [0, 1] onto [0, 1]; ``x`` is clipped first."""
    x = min(max(x, 0.0), 1.0)
    if shape == "cosine":
        return (1.0 - math.cos(math.pi * x)) / 2.0
    return x


@dataclass(frozen=True)
class KLSchedule:
    """One KL term's annealing schedule; see the module docstring for the definitions.

    Attributes:
        kind: ``"constant"``, ``"linear"``, ``"cosine"`` or ``"cyclical"``.
        value: the weight reached at the end of a ramp (the maximum weight), ``>= 0``.
        start: fraction of the total steps where the ramp (or the cycling window) starts.
        end: fraction of the total steps where it ends; ``start <= end``, both in ``[0, 1]``.
        cycles: number of cycles (``cyclical`` only), ``>= 1``.
        ratio: fraction of each cycle spent increasing (``cyclical`` only), in ``(0, 1]``.
        shape: ramp shape inside a cycle (``cyclical`` only): ``"linear"`` or ``"cosine"``.
    """

    kind: str = "constant"
    value: float = 1.0
    start: float = 0.0
    end: float = 1.0
    cycles: int = 4
    ratio: float = 0.5
    shape: str = "linear"

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULE_KINDS:
            raise ValueError(f"KL schedule kind must be one of {SCHEDULE_KINDS}, got {self.kind!r}")
        if not (math.isfinite(self.value) and self.value >= 0.0):
            raise ValueError(f"KL schedule value must be a finite number >= 0, got {self.value!r}")
        for name in ("start", "end"):
            frac = getattr(self, name)
            if not (math.isfinite(frac) and 0.0 <= frac <= 1.0):
                raise ValueError(f"KL schedule {name} must be a fraction in [0, 1], got {frac!r}")
        if self.start > self.end:
            raise ValueError(f"KL schedule start ({self.start}) must not be after end ({self.end})")
        if isinstance(self.cycles, bool) or int(self.cycles) != self.cycles or self.cycles < 1:
            raise ValueError(f"KL schedule cycles must be an integer >= 1, got {self.cycles!r}")
        if not (math.isfinite(self.ratio) and 0.0 < self.ratio <= 1.0):
            raise ValueError(f"KL schedule ratio must be in (0, 1], got {self.ratio!r}")
        if self.shape not in _SHAPES:
            raise ValueError(f"KL schedule shape must be one of {_SHAPES}, got {self.shape!r}")
        if self.kind == "cyclical" and self.start == self.end:
            raise ValueError("a cyclical KL schedule needs start < end (no cycles fit otherwise)")

    def weight(self, step: int | float, total_steps: int) -> float:
        """Weight at optimizer step ``step`` (0-based) of a run of ``total_steps`` steps."""
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        if self.kind == "constant":
            return float(self.value)
        if total_steps < 1:
            raise ValueError(
                f"a {self.kind!r} KL schedule needs total_steps >= 1 (Trainer's max_steps), "
                f"got {total_steps}"
            )
        begin = self.start * total_steps
        finish = self.end * total_steps
        step = float(step)
        if step < begin:
            return 0.0
        if step >= finish:
            return float(self.value)
        if self.kind in ("linear", "cosine"):
            return self.value * _ramp((step - begin) / (finish - begin), self.kind)
        # cyclical: position tau in [0, 1) inside the current cycle. Multiplying by the cycle
        # count before the modulo keeps integer steps exact when start = 0 and end = 1.
        span = finish - begin
        tau = math.fmod((step - begin) * self.cycles, span) / span
        if tau >= self.ratio:
            return float(self.value)
        return self.value * _ramp(tau / self.ratio, self.shape)


def _number(text: str, spec: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"bad number {text!r} in KL schedule {spec!r}") from None


def parse_schedule(spec: str) -> KLSchedule:
    """Parse a CLI schedule string into a :class:`KLSchedule`.

    Forms: ``constant[:value]``, ``linear:start:end[:value]``, ``cosine:start:end[:value]``,
    ``cyclical:cycles:ratio[:linear|cosine][:value]``. A bare number ``"0.5"`` means
    ``constant:0.5``. Fractions are of the total optimizer steps.
    """
    text = spec.strip().lower()
    if not text:
        raise ValueError("empty KL schedule")
    parts = [p.strip() for p in text.split(":")]
    kind, args = parts[0], parts[1:]
    if not args and kind not in SCHEDULE_KINDS:
        try:
            value = float(kind)
        except ValueError:
            pass  # not a bare number: _parse reports the unknown kind
        else:
            return KLSchedule(kind="constant", value=value)
    return _parse(kind, args, spec)


def _parse(kind: str, args: list[str], spec: str) -> KLSchedule:
    usage = (
        "expected constant[:value], linear:start:end[:value], cosine:start:end[:value] or "
        "cyclical:cycles:ratio[:linear|cosine][:value]"
    )
    if kind == "constant":
        if len(args) > 1:
            raise ValueError(f"bad KL schedule {spec!r}: {usage}")
        return KLSchedule(kind="constant", value=_number(args[0], spec) if args else 1.0)
    if kind in ("linear", "cosine"):
        if len(args) not in (2, 3):
            raise ValueError(f"bad KL schedule {spec!r}: {usage}")
        value = _number(args[2], spec) if len(args) == 3 else 1.0
        return KLSchedule(
            kind=kind, start=_number(args[0], spec), end=_number(args[1], spec), value=value
        )
    if kind == "cyclical":
        if len(args) < 2 or len(args) > 4:
            raise ValueError(f"bad KL schedule {spec!r}: {usage}")
        cycles = _number(args[0], spec)
        if cycles != int(cycles):
            raise ValueError(f"KL schedule cycles must be an integer, got {args[0]!r} in {spec!r}")
        shape, value = "linear", 1.0
        for extra in args[2:]:
            if extra in _SHAPES:
                shape = extra
            else:
                value = _number(extra, spec)
        return KLSchedule(
            kind="cyclical",
            cycles=int(cycles),
            ratio=_number(args[1], spec),
            shape=shape,
            value=value,
        )
    raise ValueError(f"unknown KL schedule kind {kind!r} in {spec!r}: {usage}")
