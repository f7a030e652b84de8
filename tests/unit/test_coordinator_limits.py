"""CoordinatorLimits and the per-socket frame budget (pure logic)."""

from __future__ import annotations

import time

import pytest

from switchboard.server.coordinator.limits import CoordinatorLimits, FrameBudget


def test_budget_allows_the_burst_then_refuses_then_refills() -> None:
    budget = FrameBudget(rate=50.0, burst=5)
    assert [budget.take() for _ in range(6)] == [True] * 5 + [False]
    time.sleep(0.1)  # 50/s: about 5 frames' worth
    refilled = sum(budget.take() for _ in range(10))
    assert 3 <= refilled <= 5  # never more than the burst


@pytest.mark.parametrize(
    "bad",
    [
        {"header_timeout": 0},
        {"body_timeout": -1},
        {"auth_timeout": 0},
        {"frames_per_second": 0},
        {"frame_burst": 0},
        {"max_frame_bytes": 0},
        {"max_sockets_per_user": 0},
        {"socket_opens_per_second": 0},
        {"socket_open_burst": 0},
        {"linger_time": -1},
    ],
)
def test_nonsense_limits_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        CoordinatorLimits(**bad)  # type: ignore[arg-type]
