"""The provider submission cap: turns claimed with a conditional write in the real jobs table.

The rules one call at a time (including the call that lost a race: its condition no longer holds),
then a crowd of concurrent submitters."""

from __future__ import annotations

from imagejobs.domain import clock
from imagejobs_local.stack import LocalStack


def test_one_turn_per_interval(stack: LocalStack) -> None:
    now = clock.now()
    assert stack.store.take_turn("cap-test", 2.0, now) == 0.0
    assert stack.store.take_turn("cap-test", 2.0, now) == 2.0  # the same moment: wait for the next turn
    assert 0 < stack.store.take_turn("cap-test", 2.0, now + 1.0) <= 1.0
    assert stack.store.take_turn("cap-test", 2.0, now + 2.0) == 0.0
    assert stack.store.take_turn("cap-test", 2.0, now + 2.5) > 0  # that turn was taken


def test_a_submitter_that_lost_the_race_does_not_get_the_turn(stack: LocalStack) -> None:
    now = clock.now()
    store = stack.store
    assert store.take_turn("cap-race", 5.0, now) == 0.0
    table = store._table
    seen = table.get_item(Key={"pk": "rate#cap-race"})["Item"]["next_at"]
    # another submitter takes the next turn between our read and our write...
    assert store.take_turn("cap-race", 5.0, now + 5.0) == 0.0
    # ...so a write conditioned on what we read fails, and we are told to wait
    original_get = table.get_item
    table.get_item = lambda **kwargs: {"Item": {"pk": "rate#cap-race", "next_at": seen}}  # type: ignore[method-assign, assignment]
    try:
        assert store.take_turn("cap-race", 5.0, now + 5.0) == 5.0
    finally:
        table.get_item = original_get  # type: ignore[method-assign]


def test_concurrent_submitters_never_share_a_turn(stack: LocalStack) -> None:
    """Eight submitters at the same instant (the offline runtime makes each DynamoDB request
    atomic, as DynamoDB does)."""
    from concurrent.futures import ThreadPoolExecutor

    now = clock.now()
    with ThreadPoolExecutor(max_workers=8) as pool:
        waits = list(pool.map(lambda _: stack.store.take_turn("cap-crowd", 2.0, now), range(8)))
    assert waits.count(0.0) == 1


def test_a_429_spreads_the_turns_out_and_they_come_back_gradually(stack: LocalStack) -> None:
    """The cap adapts to the provider: after a 429 no turn comes before its Retry-After, the spacing
    is doubled, and each turn taken after brings it back part of the way (never below the setting)."""
    now, spacing = clock.now(), 2.0
    assert stack.store.take_turn("cap-429", spacing, now) == 0.0
    assert stack.store.slow_down("cap-429", now + 0.5, 30.0) == 2.0  # the spacing doubled
    assert 29 < stack.store.take_turn("cap-429", spacing, now + 1.0) <= 29.5  # held until Retry-After
    at = now + 30.5
    assert stack.store.take_turn("cap-429", spacing, at) == 0.0
    gaps = []
    for _ in range(40):  # the next turns, each claimed as soon as it is free
        wait = stack.store.take_turn("cap-429", spacing, at)
        gaps.append(wait)
        at += wait
        assert stack.store.take_turn("cap-429", spacing, at) == 0.0
    assert 3.5 < gaps[0] <= 4.0  # twice the setting at first...
    assert gaps == sorted(gaps, reverse=True)  # ...then less at every turn...
    assert spacing <= gaps[-1] < 2.1  # ...back to the setting, never below it


def test_the_gate_reads_back_as_written_and_a_stale_write_is_refused(stack: LocalStack) -> None:
    """The admission gate in the real table: holders, waiters, the tenants' recent use and a cut
    come back as written, and a write decided from an old read loses (two submitters can never
    both take the last place)."""
    from imagejobs.domain.admission import Gate, Holder, Used, Waiter

    now = clock.now()
    gate = Gate(
        holders={"img_h": Holder("acme", now)},
        waiters={"img_w": Waiter("other", 1, now + 1, 3)},
        usage={"acme": Used(4.5, now), "other": Used(0.25, now - 60)},
        cut_limit=3,
        cut_at=now,
        mean_seconds=42.0,
    )
    assert stack.store.write_gate("roundtrip", gate)
    read = stack.store.gate("roundtrip")
    assert read == Gate(**{**gate.__dict__, "version": 1})
    assert not stack.store.write_gate("roundtrip", gate)  # decided from version 0: another came first
    assert stack.store.write_gate("roundtrip", read)
