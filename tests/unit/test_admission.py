"""The provider's admission gate: a limit on jobs running upstream, a fair line among tenants in
priority classes, a place in line for every waiting job, and a limit that a 429 cuts."""

from __future__ import annotations

import json

import pytest

from imagejobs.domain import admission, clock
from imagejobs.domain.admission import Gate, Waiter
from imagejobs.domain.errors import RateLimited, SubmissionInFlight
from imagejobs.domain.models import GenerationRequest, JobStatus
from imagejobs.flows import admission as gate_flow
from imagejobs.flows import submit_queue
from imagejobs.flows.intake.api import Caller, accept_generation
from imagejobs.flows.ports import Deps
from imagejobs.flows.settle import end_job
from tests.fakes import SETTINGS, FakeBudgets, FakeProvider, Fakes, FakeStore

T0 = 1_800_000_000.0


def run(gate: Gate, arrivals: list[tuple[str, Waiter]], limit: int) -> tuple[Gate, list[str]]:
    """Each arrival asks for a place in turn; returns the gate and who got one, in order."""
    admitted = []
    for job_id, waiter in arrivals:
        decision = admission.decide(gate, job_id, waiter, limit, waiter.since)
        gate = decision.gate
        if decision.admitted:
            admitted.append(job_id)
    return gate, admitted


def submit(deps: Deps, job_id: str) -> str:
    """One submit-queue message for the job, as the submit function hands it over."""
    return submit_queue.process(
        deps, json.dumps({"job_id": job_id}), receipt_handle="r", receive_count=1, log=lambda *a, **k: None
    )


def test_the_limit_is_never_passed_and_a_freed_place_goes_to_the_line() -> None:
    flood = [(f"f{i}", Waiter("flood", admission.BULK, T0 + i)) for i in range(10)]
    gate, admitted = run(Gate(), flood, limit=3)
    assert admitted == ["f0", "f1", "f2"] and len(gate.holders) == 3 and len(gate.waiters) == 7
    gate = admission.leave(gate, "f0", T0 + 60)
    assert admission.next_up(gate, 3, T0 + 60) == ["f3"]  # the first in line is woken
    # f9 is 7th in line: f3 takes the free place, then one frees every mean hold / 3
    assert admission.place(gate, "f9", 3, T0 + 60) == (7, pytest.approx(6 * gate.mean_seconds / 3))


def test_a_light_tenant_goes_ahead_of_a_flood_that_came_first() -> None:
    """Fair share: the flood's 300 jobs do not make the light tenant's 2 wait behind them."""
    flood = [(f"f{i}", Waiter("flood", admission.BULK, T0 + i * 0.01)) for i in range(300)]
    gate, _ = run(Gate(), flood, limit=4)
    light = [(f"l{i}", Waiter("light", admission.BULK, T0 + 10 + i)) for i in range(2)]
    gate, admitted = run(gate, light, limit=4)
    assert admitted == []  # every place is taken...
    assert admission.line(gate, T0 + 12)[:2] == ["l0", "l1"]  # ...but the light tenant is next
    assert (admission.place(gate, "l1", 4, T0 + 12) or (0, 0.0))[0] == 2


def test_a_flood_that_used_the_provider_lately_waits_until_the_newcomers_have_used_as_much() -> None:
    """Fair share over time: while the light tenants were idle the flood took every place; when
    they come, they get the places that free until their recent use catches up with the flood's,
    and then the places are shared again. Use fades, so an old flood is no burden."""
    flood = [(f"f{i}", Waiter("flood", admission.API, T0 + i * 0.01)) for i in range(300)]
    gate, _ = run(Gate(), flood, limit=4)
    for i in range(12):  # twelve flood jobs ran and ended, each place going to the next flood job
        gate = admission.leave(gate, f"f{i}", T0 + 60 * (i + 1))
        gate = admission.decide(gate, f"f{i + 4}", flood[i + 4][1], 4, T0 + 60 * (i + 1)).gate
    now = T0 + 800
    light = [(f"l{i}", Waiter(tenant, admission.API, now + i)) for i in range(20) for tenant in ("a", "b")]
    light = [(f"{waiter.tenant}{job_id}", waiter) for job_id, waiter in light]
    gate, _ = run(gate, light, limit=4)
    order = admission.line(gate, now + 20)
    flood_first = next(index for index, job in enumerate(order) if job.startswith("f"))
    assert flood_first >= 16  # the light tenants' jobs come first, well past an equal two thirds...
    assert flood_first < 40  # ...and the flood is not shut out behind all of them
    later = now + 20 * admission.USAGE_HALF_LIFE  # long after: the flood's use has faded
    assert admission.Used(16, now).now(later) < admission.USAGE_FORGOTTEN


def test_recent_use_is_recorded_per_tenant_and_forgotten_when_faded() -> None:
    gate, _ = run(Gate(), [("a1", Waiter("a", admission.API, T0)), ("a2", Waiter("a", admission.API, T0))], limit=4)
    assert gate.usage["a"].now(T0) == pytest.approx(2)
    assert gate.usage["a"].now(T0 + admission.USAGE_HALF_LIFE) == pytest.approx(1)
    much_later = T0 + 10 * admission.USAGE_HALF_LIFE
    gate = admission.decide(gate, "b1", Waiter("b", admission.API, much_later), 4, much_later).gate
    assert set(gate.usage) == {"b"}  # a's faded use is dropped: the record stays small


def test_weights_share_the_places_in_proportion() -> None:
    gate = Gate()
    for i in range(40):
        gate = admission.decide(gate, f"a{i}", Waiter("a", admission.BULK, T0, 3), 0, T0).gate
        gate = admission.decide(gate, f"b{i}", Waiter("b", admission.BULK, T0, 1), 0, T0).gate
    first_eight = admission.line(gate, T0)[:8]
    assert sum(job.startswith("a") for job in first_eight) == 6  # weight 3 against 1


def test_classes_go_first_and_none_starves() -> None:
    gate = Gate()
    gate = admission.decide(gate, "bulk", Waiter("t", admission.BULK, T0), 0, T0).gate
    gate = admission.decide(gate, "api", Waiter("t", admission.API, T0 + 1), 0, T0 + 1).gate
    gate = admission.decide(gate, "sync", Waiter("t", admission.INTERACTIVE, T0 + 2), 0, T0 + 2).gate
    assert admission.line(gate, T0 + 2) == ["sync", "api", "bulk"]
    # an API backlog of the inbox's own tenant takes four places for each one bulk work gets
    for i in range(20):
        gate = admission.decide(gate, f"api{i}", Waiter("t", admission.API, T0 + 4 + i), 0, T0 + 4 + i).gate
    gate = admission.decide(gate, "bulk2", Waiter("t", admission.BULK, T0 + 30), 0, T0 + 30).gate
    order = admission.line(gate, T0 + 30)
    assert order.index("bulk") < 8 and order.index("bulk2") < 16 < len(order)


def test_waiting_long_never_moves_a_backlog_ahead_of_a_newcomer() -> None:
    flood = [(f"f{i}", Waiter("flood", admission.API, T0 + i)) for i in range(30)]
    gate, _ = run(Gate(), flood, limit=4)
    late = T0 + 3600  # the flood has waited an hour
    gate = admission.decide(gate, "new", Waiter("light", admission.API, late), 4, late).gate
    assert admission.line(gate, late)[0] == "new"


def test_a_429_cuts_the_limit_to_what_the_provider_held_and_it_comes_back_gradually() -> None:
    gate, _ = run(Gate(), [(f"j{i}", Waiter("t", admission.API, T0)) for i in range(8)], limit=8)
    gate = admission.cut(admission.leave(gate, "j7", T0), 8, T0)  # j7 was refused with a 429
    assert admission.limit_in_force(gate, 8, T0) == 7  # the provider held 7 when it refused the 8th
    assert admission.decide(gate, "new", Waiter("t", admission.API, T0), 8, T0).admitted is False
    gate = admission.cut(admission.leave(gate, "j6", T0 + 1), 8, T0 + 1)  # refused again, at 7
    assert admission.limit_in_force(gate, 8, T0 + 1) == 6  # a provider that keeps refusing lowers it
    assert admission.limit_in_force(gate, 8, T0 + 1 + admission.RECOVER_SECONDS) == 7
    assert admission.limit_in_force(gate, 8, T0 + 60 * admission.RECOVER_SECONDS) == 8  # never past the setting
    assert admission.decide(gate, "new", Waiter("t", admission.API, T0), 8, T0).admitted is False


def test_through_the_flows_a_waiting_job_shows_its_place_and_is_woken_when_one_frees(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two places: the third job waits in line (a fresh delayed message, no delivery used up), its
    view shows queue_position 1, and when a job ends its place goes to it at once."""
    monkeypatch.setenv("IMAGEJOBS_TIME_SCALE", "1")  # real seconds, whatever ran before
    fakes = Fakes(settings=SETTINGS.model_copy(update={"provider_max_concurrency": 2}))
    deps = fakes.deps
    jobs = [
        accept_generation(deps, caller=Caller("t"), request=GenerationRequest(prompt=f"cat {i}", quality="low"))[0].id
        for i in range(3)
    ]
    fakes.queue.sent.clear()
    fakes.queue.sent_delays.clear()
    outcomes = [submit(deps, job) for job in jobs]
    assert outcomes == ["submitted", "submitted", "waiting"] and fakes.provider.posts == 2
    assert fakes.queue.sent == [jobs[2]] and fakes.queue.sent_delays[0] > 0  # comes back by itself too
    from imagejobs.flows.views import job_view

    view = job_view(deps, fakes.store.jobs[jobs[2]], "https://api")
    assert view["queue_position"] == 1 and view["estimated_start_at"] >= int(clock.now())
    assert "queue_position" not in job_view(deps, fakes.store.jobs[jobs[0]], "https://api")

    end_job(deps, jobs[0], JobStatus.FAILED, "test", "ended")  # a place frees...
    assert fakes.queue.sent[-1] == jobs[2]  # ...and the one waiting is woken
    again = submit(deps, jobs[2])
    assert again == "submitted" and set(fakes.store.gate("provider").holders) == {jobs[1], jobs[2]}
    assert max(running for _, running, _ in fakes.metrics.gates) == 2  # never more than the limit


def test_a_tenant_weight_comes_from_its_setting() -> None:
    fakes = Fakes(
        settings=SETTINGS.model_copy(update={"provider_max_concurrency": 1}), budgets=FakeBudgets(weights={"big": 4})
    )
    record, other = (
        accept_generation(fakes.deps, caller=Caller("big"), request=GenerationRequest(prompt=p, quality="low"))[0]
        for p in "ab"
    )
    gate_flow.admit(fakes.deps, record)
    assert gate_flow.admit(fakes.deps, other).admitted is False
    assert fakes.store.gate("provider").waiters[other.id].weight == 4


def test_a_job_another_delivery_is_sending_keeps_its_place(monkeypatch: pytest.MonkeyPatch) -> None:
    """Its POST may be running at the provider: giving its place away would let one more in."""
    monkeypatch.setenv("IMAGEJOBS_TIME_SCALE", "1")
    fakes = Fakes(settings=SETTINGS.model_copy(update={"provider_max_concurrency": 1}))
    record, _ = accept_generation(fakes.deps, caller=Caller("t"), request=GenerationRequest(prompt="a", quality="low"))
    fakes.store.jobs[record.id] = record.model_copy(update={"submission_started_at": clock.now()})  # being sent
    with pytest.raises(SubmissionInFlight):
        submit(fakes.deps, record.id)
    assert list(fakes.store.gate("provider").holders) == [record.id] and fakes.provider.posts == 0


def test_a_provider_429_gives_the_place_back_and_cuts_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGEJOBS_TIME_SCALE", "1")
    fakes = Fakes(
        settings=SETTINGS.model_copy(update={"provider_max_concurrency": 4}),
        provider=FakeProvider("p-1", "p-2", RateLimited("429", retry_after=5)),
    )
    jobs = [
        accept_generation(fakes.deps, caller=Caller("t"), request=GenerationRequest(prompt=p, quality="low"))[0].id
        for p in "abc"
    ]
    assert [submit(fakes.deps, job) for job in jobs[:2]] == ["submitted", "submitted"]
    with pytest.raises(RateLimited):
        submit(fakes.deps, jobs[2])
    gate = fakes.store.gate("provider")
    assert set(gate.holders) == set(jobs[:2])  # the refused one gave its place back...
    assert admission.limit_in_force(gate, 4, clock.now()) == 2  # ...and the limit is what the provider held


def test_a_model_with_limits_of_its_own_has_its_own_gate_and_turns(monkeypatch: pytest.MonkeyPatch) -> None:
    """ProviderModelLimits: gpt-image-2 takes one job at once at this provider, other models are
    not gated; its jobs wait at their own gate and take their own rate turns, the others go by,
    and the sweeper tidies its gate too."""
    monkeypatch.setenv("IMAGEJOBS_TIME_SCALE", "1")
    settings = SETTINGS.model_copy(update={"provider_max_concurrency": 0, "provider_model_limits": "gpt-image-2=1/6"})

    class Turns(FakeStore):
        def __init__(self) -> None:
            super().__init__()
            self.turns: list[str] = []

        def take_turn(self, name: str, interval_seconds: float, now: float) -> float:
            self.turns.append(f"{name} every {interval_seconds:g} s")
            return 0.0

    store = Turns()
    fakes = Fakes(settings=settings, store=store, provider=FakeProvider("p-1", "p-2", "p-3"))

    def job(model: str) -> str:
        request = GenerationRequest(prompt="a", model=model, quality="low")
        return accept_generation(fakes.deps, caller=Caller("t"), request=request)[0].id

    first, second, other = job("openai/gpt-image-2"), job("openai/gpt-image-2"), job("openai/gpt-image-1")
    assert [submit(fakes.deps, one) for one in (first, second, other)] == ["submitted", "waiting", "submitted"]
    gate = fakes.store.gate("provider#gpt-image-2")
    assert set(gate.holders) == {first} and set(gate.waiters) == {second}
    assert fakes.store.gate("provider") == Gate()  # the provider's own gate is off
    assert fakes.metrics.gate_models[-1] == "gpt-image-2"

    end_job(fakes.deps, first, JobStatus.FAILED, "test", "ended")  # its place frees at its own gate
    assert fakes.queue.sent[-1] == second and submit(fakes.deps, second) == "submitted"
    assert store.turns == ["provider-submit#gpt-image-2 every 10 s"] * 2  # gpt-image-1: no cap, no turn

    store.jobs[second] = store.jobs[second].model_copy(update={"status": JobStatus.SUCCEEDED})  # its leave lost
    assert gate_flow.tidy(fakes.deps) == 1 and fakes.store.gate("provider#gpt-image-2").holders == {}
