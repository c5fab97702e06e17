"""The documents stay true to the code: every link and anchor resolves, the README names every
template parameter with the template's own default, and links every document."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces as dashes."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(document: Path) -> set[str]:
    return {_anchor(heading) for heading in re.findall(r"^#{1,6} (.*)$", document.read_text(), re.M)}


def test_every_link_and_anchor_resolves() -> None:
    broken = []
    for document in DOCUMENTS:
        for target in LINK.findall(document.read_text()):
            if re.match(r"(https?|mailto):", target):
                continue
            path, _, anchor = target.partition("#")
            linked = (document.parent / path).resolve() if path else document
            if not linked.exists() or (anchor and linked.suffix == ".md" and anchor not in _anchors(linked)):
                broken.append(f"{document.relative_to(ROOT)}: {target}")
    assert broken == []


def test_the_readme_links_every_document() -> None:
    readme = (ROOT / "README.md").read_text()
    assert [doc.name for doc in DOCUMENTS[1:] if f"](docs/{doc.name})" not in readme] == []


class _TemplateLoader(yaml.SafeLoader):
    """CloudFormation's short forms (!Ref, !Sub, ...) read as plain values: only Parameters matter."""


_TemplateLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def test_the_readme_configures_every_template_parameter_with_its_default() -> None:
    template: dict[str, Any] = yaml.load((ROOT / "template.yaml").read_text(), Loader=_TemplateLoader)
    readme = (ROOT / "README.md").read_text()
    rows = dict(re.findall(r"^\| `(\w+)` \| ([^|]+) \|", readme, re.M))
    wrong = {}
    for name, parameter in template["Parameters"].items():
        default = str(parameter.get("Default", ""))
        shown = rows.get(name)
        expected = f"`{default}`" if default else "(none)"
        if shown is None or shown.strip() != expected:
            wrong[name] = (shown, expected)
    assert wrong == {}
