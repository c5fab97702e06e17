"""The provider submission cap: turns claimed with a conditional write in the real jobs table."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from imagejobs import clock
from imagejobs_local.stack import LocalStack


def test_concurrent_submitters_never_share_a_turn(stack: LocalStack) -> None:
    now = clock.now()
    with ThreadPoolExecutor(max_workers=8) as pool:
        waits = list(pool.map(lambda _: stack.store.take_turn("cap-test", 2.0, now), range(8)))

    assert waits.count(0.0) == 1  # one turn per interval, however many ask at once
    assert all(wait > 0 for wait in waits if wait)
    assert stack.store.take_turn("cap-test", 2.0, now + 1.0) > 0  # the next turn is 2 s later
    assert stack.store.take_turn("cap-test", 2.0, now + 2.0) == 0.0
