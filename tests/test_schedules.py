"""KL annealing schedules: hand-computed weights, validation, CLI parsing."""

from __future__ import annotations

import math

import pytest

from hf_nvib.training.schedules import KLSchedule, parse_schedule


def _weights(schedule: KLSchedule, steps: list[int], total: int) -> list[float]:
    return [schedule.weight(s, total) for s in steps]


def test_constant_ignores_step_and_total() -> None:
    s = KLSchedule(kind="constant", value=0.3)
    assert _weights(s, [0, 7, 1000], 10) == [0.3, 0.3, 0.3]
    assert s.weight(5, 0) == 0.3  # no total needed (e.g. evaluation-only runs)


def test_linear_warmup_hand_values() -> None:
    # T = 100, ramp over steps [20, 60), value 0.5: w = 0.5 * (step - 20) / 40 inside.
    s = KLSchedule(kind="linear", start=0.2, end=0.6, value=0.5)
    steps = [0, 19, 20, 30, 40, 59, 60, 61, 100]
    expected = [0.0, 0.0, 0.0, 0.125, 0.25, 0.4875, 0.5, 0.5, 0.5]
    assert _weights(s, steps, 100) == pytest.approx(expected, abs=1e-12)


def test_linear_default_spans_whole_run() -> None:
    s = KLSchedule(kind="linear")
    assert _weights(s, [0, 1, 5, 9, 10], 10) == pytest.approx([0.0, 0.1, 0.5, 0.9, 1.0])


def test_linear_step_function_when_start_equals_end() -> None:
    s = KLSchedule(kind="linear", start=0.5, end=0.5, value=2.0)
    assert _weights(s, [0, 49, 50, 99], 100) == [0.0, 0.0, 2.0, 2.0]


def test_cosine_monotonic_hand_values() -> None:
    # T = 60, ramp over the whole run: x = step / 60; w = (1 - cos(pi x)) / 2.
    # x = 1/3: (1 - 1/2) / 2 = 0.25; x = 1/2: 0.5; x = 2/3: (1 + 1/2) / 2 = 0.75.
    s = KLSchedule(kind="cosine")
    assert _weights(s, [0, 20, 30, 40, 60], 60) == pytest.approx(
        [0.0, 0.25, 0.5, 0.75, 1.0], abs=1e-12
    )
    # Value scales the curve and the ramp can be a window: T = 100, ramp [50, 100).
    s = KLSchedule(kind="cosine", start=0.5, end=1.0, value=4.0)
    assert _weights(s, [10, 50, 75, 100], 100) == pytest.approx([0.0, 0.0, 2.0, 4.0], abs=1e-12)


def test_cyclical_linear_fu_et_al() -> None:
    # T = 100, M = 4 cycles of 25 steps, R = 0.5: ramp over 12.5 steps then flat at 1.
    s = KLSchedule(kind="cyclical", cycles=4, ratio=0.5)
    steps = [0, 5, 10, 12, 13, 24, 25, 30, 50, 62, 63, 75, 99, 100]
    expected = [0.0, 0.4, 0.8, 0.96, 1.0, 1.0, 0.0, 0.4, 0.0, 0.96, 1.0, 0.0, 1.0, 1.0]
    assert _weights(s, steps, 100) == pytest.approx(expected, abs=1e-12)


def test_cyclical_cosine_ramp() -> None:
    # Same cycles; step 5 is x = 5 / 12.5 = 0.4 of the ramp: (1 - cos 72°) / 2 with
    # cos 72° = (sqrt(5) - 1) / 4 ≈ 0.309017 → 0.345492.
    s = KLSchedule(kind="cyclical", cycles=4, ratio=0.5, shape="cosine", value=2.0)
    expected_5 = 2.0 * (1 - (math.sqrt(5) - 1) / 4) / 2
    assert s.weight(5, 100) == pytest.approx(expected_5, abs=1e-12)
    assert expected_5 == pytest.approx(0.690983, abs=1e-6)
    assert _weights(s, [0, 25, 13, 20], 100) == pytest.approx([0.0, 0.0, 2.0, 2.0])


def test_cyclical_non_integer_cycle_length() -> None:
    # T = 10, M = 3: cycle length 10/3, tau = (3 step mod 10) / 10, R = 0.5.
    s = KLSchedule(kind="cyclical", cycles=3, ratio=0.5)
    # step 3 → tau 0.9 → 1; step 4 → tau 0.2 → 0.4; step 7 → tau 0.1 → 0.2; step 10 → end → 1.
    assert _weights(s, [0, 3, 4, 7, 10], 10) == pytest.approx([0.0, 1.0, 0.4, 0.2, 1.0])


def test_cyclical_inside_a_window() -> None:
    # T = 100, window [20, 60): 2 cycles of 20 steps, ramp over the first 10 (R = 0.5).
    s = KLSchedule(kind="cyclical", start=0.2, end=0.6, cycles=2, ratio=0.5)
    steps = [10, 20, 25, 30, 39, 40, 45, 59, 60, 90]
    expected = [0.0, 0.0, 0.5, 1.0, 1.0, 0.0, 0.5, 1.0, 1.0, 1.0]
    assert _weights(s, steps, 100) == pytest.approx(expected, abs=1e-12)


def test_cyclical_ratio_one_is_a_sawtooth() -> None:
    s = KLSchedule(kind="cyclical", cycles=2, ratio=1.0)
    assert _weights(s, [0, 2, 4, 5, 9, 10], 10) == pytest.approx([0.0, 0.4, 0.8, 0.0, 0.8, 1.0])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "exponential"}, "kind"),
        ({"value": -0.1}, "value"),
        ({"value": math.inf}, "value"),
        ({"start": -0.1}, "start"),
        ({"end": 1.5}, "end"),
        ({"kind": "linear", "start": 0.7, "end": 0.3}, "after"),
        ({"kind": "cyclical", "cycles": 0}, "cycles"),
        ({"kind": "cyclical", "cycles": 2.5}, "cycles"),
        ({"kind": "cyclical", "ratio": 0.0}, "ratio"),
        ({"kind": "cyclical", "ratio": 1.5}, "ratio"),
        ({"kind": "cyclical", "shape": "step"}, "shape"),
        ({"kind": "cyclical", "start": 0.5, "end": 0.5}, "start < end"),
    ],
)
def test_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        KLSchedule(**kwargs)


def test_weight_rejects_bad_step_and_total() -> None:
    with pytest.raises(ValueError, match="step"):
        KLSchedule(kind="linear").weight(-1, 10)
    with pytest.raises(ValueError, match="total_steps"):
        KLSchedule(kind="linear").weight(0, 0)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("constant", KLSchedule(kind="constant", value=1.0)),
        ("constant:0.25", KLSchedule(kind="constant", value=0.25)),
        ("0.5", KLSchedule(kind="constant", value=0.5)),
        ("linear:0.3:0.6", KLSchedule(kind="linear", start=0.3, end=0.6)),
        ("linear:0.3:0.6:0.1", KLSchedule(kind="linear", start=0.3, end=0.6, value=0.1)),
        (" Cosine:0:0.5 ", KLSchedule(kind="cosine", start=0.0, end=0.5)),
        ("cyclical:4:0.5", KLSchedule(kind="cyclical", cycles=4, ratio=0.5)),
        (
            "cyclical:3:0.25:cosine",
            KLSchedule(kind="cyclical", cycles=3, ratio=0.25, shape="cosine"),
        ),
        (
            "cyclical:2:0.5:cosine:0.2",
            KLSchedule(kind="cyclical", cycles=2, ratio=0.5, shape="cosine", value=0.2),
        ),
        ("cyclical:2:0.5:0.2", KLSchedule(kind="cyclical", cycles=2, ratio=0.5, value=0.2)),
    ],
)
def test_parse_schedule(spec: str, expected: KLSchedule) -> None:
    assert parse_schedule(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty"),
        ("sigmoid:0:1", "unknown"),
        ("warmup", "unknown"),
        ("linear:0.3", "bad KL schedule"),
        ("linear:0.3:x", "bad number"),
        ("constant:1:2", "bad KL schedule"),
        ("cyclical:4", "bad KL schedule"),
        ("cyclical:2.5:0.5", "integer"),
        ("linear:0.8:0.2", "after"),
    ],
)
def test_parse_schedule_errors(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_schedule(spec)
