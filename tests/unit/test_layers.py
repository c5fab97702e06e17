"""The package's rooms and their direction (docs/architecture.md), read from the import graph.

Every module lives in a room's folder: `domain/` (the rules, no I/O), `flows/` (the application:
the job logic by flow), `adapters/` (the world) and `edge/` (composition: routers, entry points,
wiring). Each room may import only the rooms below it, by folder, so a new module is checked by
where it lives. Every import form counts: `import imagejobs.x`, `from imagejobs.x import y`,
`from imagejobs import x`, relative ones, and imports inside functions."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "layers/shared/imagejobs"
MAY_IMPORT = {
    "domain": {"domain"},
    "flows": {"domain", "flows"},
    "adapters": {"domain", "adapters"},
    "edge": {"domain", "flows", "adapters", "edge"},
}
BANNED = ("boto3", "botocore", "httpx", "aws_lambda_powertools", "mypy_boto3")  # never in domain or flows
PURE = ("domain", "flows")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(source: str, module: str, is_package: bool = False) -> set[str]:
    """Every module `source` (the module `module`) imports, anywhere in it. `from a import b`
    counts as a and a.b (b may be a module); relative imports are resolved against the package."""
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def room_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "imagejobs" and len(parts) > 1 and parts[1] in MAY_IMPORT else None


def violations(source: str, module: str, is_package: bool = False) -> list[str]:
    room = room_of(module)
    assert room is not None, f"{module} is in no room"
    problems = []
    for imported in sorted(imports_of(source, module, is_package)):
        target = room_of(imported)
        if target is not None and target not in MAY_IMPORT[room]:
            problems.append(f"{module} ({room}) imports {imported} ({target})")
        if room in PURE and imported.split(".")[0] in BANNED:
            problems.append(f"{module} ({room}) imports {imported}")
    return problems


def package_modules() -> list[Path]:
    return sorted(path for path in PACKAGE.rglob("*.py") if path != PACKAGE / "__init__.py")


def test_every_module_lives_in_a_room() -> None:
    homeless = [module_name(path) for path in package_modules() if room_of(module_name(path)) is None]
    assert not homeless, f"modules outside domain/, flows/, adapters/, edge/: {homeless}"


def test_every_import_goes_down_the_rooms() -> None:
    problems = [
        problem
        for path in package_modules()
        for problem in violations(path.read_text(), module_name(path), path.name == "__init__.py")
    ]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("source", "module"),
    [
        ("def later():\n    from imagejobs.adapters import store\n", "imagejobs.domain.models"),  # in a function
        ("from . import views\nfrom ..adapters import aws\n", "imagejobs.flows.poll"),  # relative
        ("import imagejobs.adapters.provider\n", "imagejobs.flows.submit"),  # import a.b.c
        ("from imagejobs import adapters\n", "imagejobs.domain.jobs"),  # from the package
        ("import httpx\n", "imagejobs.flows.intake"),  # an HTTP client in the application
    ],
)
def test_the_check_sees_every_import_form(source: str, module: str) -> None:
    """Each form the earlier check (top-level `from imagejobs.x import` only) missed is caught."""
    assert violations(source, module)


def test_the_domain_and_the_flows_load_no_sdk_no_http_client_no_powertools() -> None:
    """What they load at run time, transitively (a room's own imports are checked above)."""
    modules = [module_name(path) for path in package_modules() if room_of(module_name(path)) in PURE]
    loaded_roots = "{m.split('.')[0] for m in sys.modules}"
    probe = f"import sys, {', '.join(modules)}; print(sorted({loaded_roots} & set({BANNED!r})))"
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=PACKAGE.parent
    ).stdout.strip()
    assert loaded == "[]", f"loaded by the domain or the flows: {loaded}"
