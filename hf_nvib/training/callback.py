"""Trainer callback that anneals the NVIB KL weights from the optimizer step.

The weights are a pure function of ``state.global_step`` and ``state.max_steps`` (see
:mod:`hf_nvib.training.schedules`), so resuming from a checkpoint reproduces them exactly.
They are written into the model through its ``set_kl_weights(gaussian=..., dirichlet=...)``,
which stores them in non-persistent buffers used by the loss.
"""

from __future__ import annotations

from typing import Any

from torch import nn
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from hf_nvib.training.schedules import KLSchedule

__all__ = ["NvibKLCallback", "find_nvib_model"]

_MAX_UNWRAP = 16


def _has_setter(obj: object) -> bool:
    return callable(getattr(type(obj), "set_kl_weights", None)) or callable(
        obj.__dict__.get("set_kl_weights") if hasattr(obj, "__dict__") else None
    )


def find_nvib_model(model: Any) -> Any:
    """Return the module whose ``set_kl_weights`` the callback must call.

    Unwraps DDP/DataParallel/FSDP-style wrappers (``.module``) and PEFT (``get_base_model()``),
    then returns the first module in ``modules()`` order (the root first) that defines a callable
    ``set_kl_weights``. The setter is looked up on the module itself, not through ``__getattr__``
    forwarding (PEFT forwards unknown attributes to the base model), so the returned object is
    the NVIB model proper.

    Raises:
        ValueError: no such module (e.g. a plain, non-NVIB model was given).
    """
    if model is None:
        raise ValueError("NvibKLCallback received no model from the Trainer")
    chain = [model]
    current = model
    for _ in range(_MAX_UNWRAP):
        if _has_setter(current):
            return current
        inner = getattr(current, "module", None)
        if inner is None or inner is current:
            get_base = getattr(current, "get_base_model", None)
            inner = get_base() if callable(get_base) else None
        if inner is None or inner is current:
            break
        current = inner
        chain.append(current)
    # Innermost first: the unwrapped model, then (if unwrapping took a wrong turn) the outer ones.
    for candidate in reversed(chain):
        if isinstance(candidate, nn.Module):
            for module in candidate.modules():
                if _has_setter(module):
                    return module
    raise ValueError(
        f"NvibKLCallback found no module with a callable `set_kl_weights(gaussian=..., "
        f"dirichlet=...)` in {type(model).__name__}: the Trainer's model is not an NVIB model "
        f"(hf_nvib NvibBart/NvibT5 ...ForConditionalGeneration, possibly PEFT- or DDP-wrapped)."
    )


class NvibKLCallback(TrainerCallback):
    """Anneal the Gaussian and Dirichlet KL weights with two independent schedules.

    Writes ``schedule.weight(state.global_step, state.max_steps)`` at ``on_train_begin``, at
    ``on_step_begin`` (the weight the coming optimizer step trains with) and at ``on_step_end``
    (after ``global_step`` moved on, so an evaluation triggered at that step reports the loss
    with the current weight rather than the previous step's). A schedule of ``None`` leaves
    that weight untouched.

    ``current_weights`` holds the last weights written, keyed ``kl_gaussian_weight`` and
    ``kl_dirichlet_weight`` (the model's buffer names), ready to merge into logs.
    """

    def __init__(
        self, gaussian: KLSchedule | None = None, dirichlet: KLSchedule | None = None
    ) -> None:
        for name, schedule in (("gaussian", gaussian), ("dirichlet", dirichlet)):
            if schedule is not None and not isinstance(schedule, KLSchedule):
                raise TypeError(f"{name} must be a KLSchedule or None, got {type(schedule)}")
        self.gaussian = gaussian
        self.dirichlet = dirichlet
        self._weights: dict[str, float] = {}
        self._model: Any = None
        self._target: Any = None

    @property
    def current_weights(self) -> dict[str, float]:
        """The weights last written to the model (empty before the first write)."""
        return dict(self._weights)

    def weights_at(self, step: int, total_steps: int) -> dict[str, float]:
        """The weights the schedules give at ``step`` of ``total_steps`` (annealed terms only)."""
        weights: dict[str, float] = {}
        if self.gaussian is not None:
            weights["kl_gaussian_weight"] = self.gaussian.weight(step, total_steps)
        if self.dirichlet is not None:
            weights["kl_dirichlet_weight"] = self.dirichlet.weight(step, total_steps)
        return weights

    def _resolve(self, model: Any) -> Any:
        # The Trainer passes the same model object to every event; search once per object.
        if model is not self._model or self._target is None:
            self._target = find_nvib_model(model)
            self._model = model
        return self._target

    def apply(self, model: Any, step: int, total_steps: int) -> dict[str, float]:
        """Write the weights for ``step`` into ``model`` (any wrapping) and return them."""
        weights = self.weights_at(step, total_steps)
        if not weights:
            return {}
        self._resolve(model).set_kl_weights(
            gaussian=weights.get("kl_gaussian_weight"),
            dirichlet=weights.get("kl_dirichlet_weight"),
        )
        self._weights = weights
        return dict(weights)

    def _on_event(self, state: TrainerState, model: Any) -> None:
        self.apply(model, state.global_step, state.max_steps)

    def on_train_begin(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        model: Any = None,
        **kwargs: Any,
    ) -> None:
        self._on_event(state, model)

    def on_step_begin(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        model: Any = None,
        **kwargs: Any,
    ) -> None:
        self._on_event(state, model)

    def on_step_end(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        model: Any = None,
        **kwargs: Any,
    ) -> None:
        self._on_event(state, model)
