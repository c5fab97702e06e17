"""The OpenAPI document in the repository is the one the API function serves."""

from __future__ import annotations

import json

from imagejobs_local import openapi


def test_the_committed_document_is_what_the_code_generates() -> None:
    assert openapi.DOCUMENT.read_text(encoding="utf-8") == openapi.generate(), (
        "schemas/openapi.json is stale: run python -m imagejobs_local.openapi"
    )


def test_every_operation_documents_its_errors_in_openai_shape() -> None:
    spec = json.loads(openapi.generate())
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            answers = operation["responses"]
            assert "401" in answers, (method, path)  # every route is behind the key authorizer
            for status, answer in answers.items():
                if status.startswith("4"):
                    assert answer["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
