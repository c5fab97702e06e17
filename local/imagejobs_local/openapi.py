"""Writes the API's OpenAPI document (schemas/openapi.json) from the API function's routes.

The document is what GET /openapi.json serves; the copy in the repository is for readers and
tools, and a test keeps it equal to what the code generates. `--check` fails if it is stale.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from unittest import mock

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = ROOT / "schemas" / "openapi.json"
PLACEHOLDER_ENV = {
    "AWS_DEFAULT_REGION": "us-east-1",
    # The module makes its table resource at init (as on Lambda, whose environment has credentials):
    # placeholders, so botocore's credential chain never asks the instance metadata service.
    "AWS_ACCESS_KEY_ID": "placeholder",
    "AWS_SECRET_ACCESS_KEY": "placeholder",
    "JOBS_TABLE": "jobs",
    "RESULTS_BUCKET": "results",
    "SUBMIT_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/submit",
    "STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:jobs",
    "PROVIDER_BASE_URL": "https://provider.invalid",
    "PROVIDER_SECRET_ID": "provider",
}


def api_module() -> ModuleType:
    """The API function's module, loaded with placeholder settings (it makes its clients at init
    and never calls them here): its routes, route table and OpenAPI document, without a stack."""
    with mock.patch.dict(os.environ, PLACEHOLDER_ENV):
        spec = importlib.util.spec_from_file_location("imagejobs_api_for_openapi", ROOT / "functions/api/app.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module


def generate() -> str:
    """Ask the API function for its document."""
    return str(api_module().openapi_document()) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if schemas/openapi.json is not up to date")
    args = parser.parse_args(argv)
    document = generate()
    if args.check:
        if DOCUMENT.read_text(encoding="utf-8") != document:
            print(f"{DOCUMENT.relative_to(ROOT)} is stale: run python -m imagejobs_local.openapi", file=sys.stderr)
            return 1
        return 0
    DOCUMENT.write_text(document, encoding="utf-8")
    print(f"wrote {DOCUMENT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
