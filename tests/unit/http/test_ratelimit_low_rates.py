"""A low ``PROPDEV_RATE_LIMIT`` spaces requests out; it never refuses every request."""

from __future__ import annotations

import pytest

from propdev.http.ratelimit import Policy, gcra


@pytest.mark.parametrize("rate", [0.05, 0.2, 0.5, 1.0])
def test_every_rule_lets_a_first_request_through_and_then_waits_its_interval(rate: float) -> None:
    policy = Policy.from_rate(rate)
    for rule in (policy.client, policy.ip, policy.auth, policy.open):
        assert rule.burst >= 1, rule
        first, tat = gcra(None, 1000.0, rule)
        assert first.allowed, rule
        if rule.burst < 2:  # one at a time: the next waits a whole interval
            second, _ = gcra(tat, 1000.0, rule)
            assert not second.allowed
            assert second.retry_after == pytest.approx(rule.interval)
            later, _ = gcra(tat, 1000.0 + rule.interval, rule)
            assert later.allowed
