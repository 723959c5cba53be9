"""The documentation keeps up with the code: the generated reference pages are current, and
every hook, setting and command is documented; the README stays a front door."""

from __future__ import annotations

import dataclasses
import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs"


def generator():
    spec = importlib.util.spec_from_file_location("docs_generate", DOCS / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("page", ["cli.md", "settings.md", "hooks.md"])
def test_generated_pages_are_current(page):
    gen = generator()
    assert (DOCS / "reference" / page).read_text() == gen.PAGES[page](), (
        f"docs/reference/{page} is out of date: run python docs/generate.py"
    )


def test_every_hookspec_is_documented():
    from deepcore_core import hookspecs

    specs = [n for n, f in vars(hookspecs).items() if hasattr(f, "deepcore_spec")]
    assert len(specs) >= 12
    page = (DOCS / "reference" / "hooks.md").read_text()
    missing = [n for n in specs if f"## `{n}(" not in page]
    assert not missing, f"hooks missing from docs/reference/hooks.md: {missing}"


def test_every_setting_is_documented():
    from deepcore_core.settings import RunSettings, SelectSettings, TrainCommandSettings

    page = (DOCS / "reference" / "settings.md").read_text()
    for cls in (SelectSettings, TrainCommandSettings, RunSettings):
        missing = [f.name for f in dataclasses.fields(cls) if f"| `{f.name}` |" not in page]
        assert not missing, f"{cls.__name__} settings missing from the docs: {missing}"


def test_every_command_is_documented():
    import typer.main

    from deepcore_core.cli import create_app
    from deepcore_core.plugins import PluginHost

    group = typer.main.get_command(create_app(PluginHost(load_entrypoints=False)))
    page = (DOCS / "reference" / "cli.md").read_text()
    missing = [c for c in group.list_commands(None) if f"## deepcore {c}\n" not in page]  # type: ignore[attr-defined, arg-type]
    assert not missing, f"commands missing from docs/reference/cli.md: {missing}"


def test_readme_is_a_front_door():
    text = (ROOT / "README.md").read_text()
    lines = text.splitlines()
    assert len(lines) <= 220, f"README.md has {len(lines)} lines; move reference to docs/"
    commands = [line for line in lines[:12] if line.startswith(("pip ", "python "))]
    assert len(commands) == 2, "README.md must begin with the set-up and the test command"
    for target in re.findall(r"\]\(([^)#]+)", text):
        if not target.startswith("http"):
            assert (ROOT / target).exists(), f"README.md links to a missing file: {target}"


def test_docs_link_to_existing_files():
    for page in DOCS.rglob("*.md"):
        for target in re.findall(r"\]\(([^)#]+)", page.read_text()):
            if not target.startswith(("http", "mailto:")):
                assert (page.parent / target).exists(), f"{page}: missing link target {target}"
