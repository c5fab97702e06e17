"""The package's rooms and their direction (README, "Architecture"): the domain and the application
never load an AWS SDK, an HTTP client or Powertools; the domain imports nothing of the application
or the adapters."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "layers/shared/imagejobs"
DOMAIN = {
    "models", "jobs", "polling", "pricing", "budget", "images", "events", "errors",
    "uploads", "requests_in", "staged", "clock", "failpoints", "settings",
}  # fmt: skip
APPLICATION = {"flows", "sweeper", "notify", "submit_queue"}  # flows: the job logic, one module per flow
BANNED = ("boto3", "botocore", "httpx", "aws_lambda_powertools", "mypy_boto3")


def test_domain_and_application_load_no_sdk_no_http_client_no_powertools() -> None:
    modules = ", ".join(f"imagejobs.{name}" for name in sorted(DOMAIN | APPLICATION))
    probe = f"import sys, {modules}; print(sorted({{m.split('.')[0] for m in sys.modules}} & set({BANNED!r})))"
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=PACKAGE.parent
    ).stdout.strip()
    assert loaded == "[]", f"loaded by the domain or application: {loaded}"


def test_the_domain_imports_only_the_domain() -> None:
    for name in sorted(DOMAIN):
        tree = ast.parse((PACKAGE / f"{name}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("imagejobs"):
                imported = (
                    {node.module.removeprefix("imagejobs.")}
                    if node.module != "imagejobs"
                    else {alias.name for alias in node.names}
                )
                assert imported <= DOMAIN, f"imagejobs.{name} imports {sorted(imported - DOMAIN)}"
