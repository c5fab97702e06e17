"""Job ids and the request fingerprint (imagejobs.domain.identity)."""

from __future__ import annotations

import hashlib

from imagejobs.domain import identity
from imagejobs.domain.models import EditRequest, GenerationRequest, ObjectRef


def test_idempotency_key_is_per_tenant() -> None:
    assert identity.api_job_id("t1", "k") == identity.api_job_id("t1", "k")
    assert identity.api_job_id("t1", "k") != identity.api_job_id("t2", "k")
    assert identity.api_job_id("t1", None) != identity.api_job_id("t1", None)
    assert identity.JOB_ID.fullmatch(identity.api_job_id("t1", None))


def test_api_job_ids_have_their_own_namespace() -> None:
    """Issue #15.12: tenant "event" with an event id as its Idempotency-Key got that event's job id."""
    event_id = "0d3c1c50-8f2a-4f6e-9a3b-5b8f6d3c2e10"
    assert identity.api_job_id("event", event_id) != identity.event_job_id(event_id)


def test_ids_are_the_ones_deployed_stacks_made() -> None:
    """A retry that crosses a deploy must find its first job: the derivation may not drift."""

    def derived(text: str) -> str:
        return "img_" + hashlib.sha256(text.encode()).hexdigest()[:24]

    assert identity.api_job_id("t1", "k") == derived("api\x00t1\x00k")
    assert identity.event_job_id("e-1") == derived("event\x00e-1")
    ref = ObjectRef(bucket="b", key="uploads/a.png", etag="e1")
    assert identity.upload_job_id(ref, {"Prompt": "blue", "x-tool": "ignored"}) == derived(
        'upload\x00b\x00uploads/a.png\x00e1\x00[["prompt", "blue"]]'
    )


def test_one_fingerprint_for_a_request_and_its_images() -> None:
    cat = GenerationRequest(prompt="a cat", quality="low")
    assert identity.fingerprint(cat) == identity.fingerprint(GenerationRequest(quality="low", prompt="a cat"))
    assert identity.fingerprint(cat) != identity.fingerprint(GenerationRequest(prompt="a cat", quality="high"))
    edit = EditRequest(prompt="a cat")
    assert identity.fingerprint(edit, b"one") != identity.fingerprint(edit, b"two")
    assert identity.fingerprint(edit, b"one", b"two") != identity.fingerprint(edit, b"two", b"one")
    # what a failed job kept of a refused request has one too
    assert identity.fingerprint({"prompt": "", "n": 99}) == identity.fingerprint({"n": 99, "prompt": ""})
