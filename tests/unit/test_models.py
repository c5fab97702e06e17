"""Request rules of the image API (OpenAI's reference for GPT image models), as a caller meets them."""

import pytest
from pydantic import ValidationError

from imagejobs.domain.models import MAX_PROMPT_CHARS, GenerationRequest


def test_defaults_fill_a_minimal_request() -> None:
    request = GenerationRequest.model_validate({"prompt": "a cat"})
    assert (request.n, request.size, request.quality, request.output_format) == (1, "auto", "auto", "png")


def test_every_documented_parameter_is_accepted() -> None:
    request = GenerationRequest.model_validate(
        {
            "prompt": "a cat",
            "model": "openai/gpt-image-1",
            "n": 10,
            "size": "1536x1024",
            "quality": "high",
            "background": "opaque",
            "output_format": "webp",
            "output_compression": 80,
            "moderation": "low",
            "user": "user-42",
        }
    )
    assert request.provider_body()["output_compression"] == 80


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "prompt"),
        ({"prompt": ""}, "prompt"),
        ({"prompt": "   "}, "prompt"),
        ({"prompt": "x" * (MAX_PROMPT_CHARS + 1)}, "prompt"),
        ({"prompt": "a", "size": "512 by 512"}, "size"),
        ({"prompt": "a", "quality": "ultra"}, "quality"),
        ({"prompt": "a", "background": "green"}, "background"),
        ({"prompt": "a", "output_format": "gif"}, "output_format"),
        ({"prompt": "a", "n": 0}, "n"),
        ({"prompt": "a", "n": 11}, "n"),
        ({"prompt": "a", "n": True}, "n"),
        ({"prompt": "a", "n": 2.5}, "n"),
        ({"prompt": "a", "output_format": "jpeg", "output_compression": 101}, "output_compression"),
        ({"prompt": "a", "moderation": "none"}, "moderation"),
        ({"prompt": "a", "colour": "red"}, "colour"),
    ],
)
def test_bad_values_name_the_parameter(body: dict, param: str) -> None:
    with pytest.raises(ValidationError) as caught:
        GenerationRequest.model_validate(body)
    assert caught.value.errors()[0]["loc"][0] == param


def test_prompt_of_exactly_the_limit_is_fine() -> None:
    assert GenerationRequest.model_validate({"prompt": "x" * MAX_PROMPT_CHARS})


def test_transparent_background_needs_png_or_webp() -> None:
    with pytest.raises(ValidationError, match="transparent"):
        GenerationRequest.model_validate({"prompt": "a", "background": "transparent", "output_format": "jpeg"})
    assert GenerationRequest.model_validate({"prompt": "a", "background": "transparent", "output_format": "webp"})


def test_output_compression_is_for_jpeg_and_webp_only() -> None:
    with pytest.raises(ValidationError, match="output_compression"):
        GenerationRequest.model_validate({"prompt": "a", "output_compression": 50})
    assert GenerationRequest.model_validate({"prompt": "a", "output_format": "jpeg", "output_compression": 50})


def test_every_payload_the_state_machine_sends_finalize_is_one_it_takes() -> None:
    """The finalize step's input as statemachine/jobs.asl.json writes it (each Task's Payload
    for the finalize function, its JSONPath values filled in), validated by FinalizeInput."""
    import json
    from pathlib import Path

    from imagejobs.domain.models import FinalizeInput

    machine = json.loads((Path(__file__).resolve().parents[2] / "statemachine/jobs.asl.json").read_text())
    sample = {"job_id": "img_1", "error": {"Error": "DownloadFailed", "Cause": "{}"}, "final_status": "failed"}
    payloads = [
        state["Parameters"]["Payload"]
        for state in machine["States"].values()
        if "FinalizeFunctionArn" in str((state.get("Parameters") or {}).get("FunctionName"))
    ]
    assert len(payloads) >= 2
    for payload in payloads:
        filled = {key.removesuffix(".$"): sample.get(key.removesuffix(".$"), value) for key, value in payload.items()}
        FinalizeInput.model_validate(filled)  # raises on an action (or field) it does not take
