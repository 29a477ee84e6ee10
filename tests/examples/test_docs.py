"""The documentation's links resolve and the pipeline reference covers every step kind."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from lakeloom.pipelines import registered_kinds

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
PAGES = sorted([*DOCS.rglob("*.md"), REPO / "examples" / "notebooks" / "README.md"])
_LINK = re.compile(r"\]\(([^)\s]+)\)")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(page: Path) -> None:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    broken = []
    for target in _LINK.findall(text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue  # a URL, or an anchor in the same page
        path = (page.parent / target.split("#", 1)[0]).resolve()
        if not path.exists():
            broken.append(target)
    assert not broken, f"{page.relative_to(REPO)} links to missing files: {broken}"


def test_the_index_links_every_page() -> None:
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    linked = {(DOCS / t.split("#", 1)[0]).resolve() for t in _LINK.findall(index)}
    missing = [p.relative_to(DOCS) for p in DOCS.rglob("*.md") if p.resolve() not in linked]
    assert [str(p) for p in missing] == ["index.md"], f"docs/index.md does not link {missing}"


def test_the_pipeline_reference_documents_every_step_kind_and_key() -> None:
    text = (DOCS / "pipelines.md").read_text(encoding="utf-8")
    missing = []
    for name, kind in registered_kinds().items():
        if not kind.run.__module__.startswith("lakeloom."):
            continue  # a kind some test registered, not a built-in one
        section = re.search(rf"#### `{name}`.*?(?=\n#### |\n## |\Z)", text, flags=re.S)
        if section is None:
            missing.append(f"kind {name}")
            continue
        for field in dataclasses.fields(kind.params):
            if f"`{field.name}`" not in section.group(0):
                missing.append(f"{name}.{field.name}")
    assert not missing, f"docs/pipelines.md does not document: {', '.join(missing)}"
