"""Test sessions. Each plugin is tested in its own environment with only the core installed.

Run everything with ``nox``; one plugin with ``nox -s "plugin(uncertainty)"``; all plugins
with ``nox -t plugins``. Installs are non-editable (set DEEPCORE_NOX_EDITABLE=1 for -e).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nox

ROOT = Path(__file__).parent
PLUGINS = sorted(
    p.name.removeprefix("deepcore-")
    for p in (ROOT / "plugins").glob("deepcore-*")
    if (p / "pyproject.toml").exists()
)
EXAMPLE = "examples/deepcore-example-prototypes"
OBSERVER = "examples/deepcore-example-tensorboard"
DISTRIBUTIONS = [".", *(f"plugins/deepcore-{n}" for n in PLUGINS), EXAMPLE, OBSERVER]

nox.options.default_venv_backend = "uv"
nox.options.reuse_existing_virtualenvs = True
nox.options.download_python = "never"
nox.options.sessions = [
    "lint",
    "typecheck",
    "core",
    "plugin",
    "example_plugin",
    "observer_plugin",
    "integration",
    "build",
]


def _pip_settings_for_uv() -> None:
    """Let uv use the same package sources as pip (mirrors, wheel folders, constraints)."""
    mapping = {
        "find-links": "UV_FIND_LINKS",
        "extra-index-url": "UV_EXTRA_INDEX_URL",
        "index-url": "UV_DEFAULT_INDEX",
        "constraint": "UV_CONSTRAINT",
    }
    try:
        out = subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return
    for line in out.splitlines():
        key, _, value = line.partition("=")
        name = key.rsplit(".", 1)[-1]
        if name in mapping and mapping[name] not in os.environ:
            os.environ[mapping[name]] = value.strip().strip("'\"")
            if name == "extra-index-url":  # pip picks the best match over all its indexes
                os.environ.setdefault("UV_INDEX_STRATEGY", "unsafe-best-match")


_pip_settings_for_uv()


def _test_group(path: str) -> list[str]:
    return nox.project.dependency_groups(nox.project.load_toml(f"{path}/pyproject.toml"), "test")


def _install(session: nox.Session, *paths: str) -> None:
    """Install local packages (and their test groups) in one resolver call."""
    editable = os.environ.get("DEEPCORE_NOX_EDITABLE") == "1"
    args: list[str] = []
    for p in paths:
        args += ["-e", p] if editable else [p]
        args += _test_group(p)
    session.install(*args)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff lint and format check over the whole repository."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy over the core, every plugin and the examples, installed together (see pyproject)."""
    _install(session, *DISTRIBUTIONS)
    session.install("mypy", "types-PyYAML")
    session.run("mypy")


@nox.session
def build(session: nox.Session) -> None:
    """Build the wheel and sdist of every distribution; install the wheels in a fresh venv."""
    import shutil
    import tempfile

    session.install("build", "uv")
    dist = Path(tempfile.mkdtemp(prefix="deepcore-dist-"))
    try:
        for path in DISTRIBUTIONS:
            session.run("python", "-m", "build", "--installer", "uv", "--outdir", str(dist), path)
        wheels = sorted(str(w) for w in dist.glob("*.whl"))
        if len(wheels) != len(DISTRIBUTIONS) or len(list(dist.glob("*.tar.gz"))) != len(wheels):
            session.error(f"expected a wheel and an sdist per distribution, got {wheels}")
        venv = dist / "venv"
        session.run("uv", "venv", "--quiet", str(venv))
        py = str(venv / "bin" / "python")
        session.run("uv", "pip", "install", "--quiet", "--python", py, *wheels)
        session.run(py, "-m", "deepcore_core", "--strict-plugins", "list-methods")
        session.run(py, "-m", "deepcore_core", "--strict-plugins", "plugins")
    finally:
        shutil.rmtree(dist, ignore_errors=True)


@nox.session
def core(session: nox.Session) -> None:
    """The core alone, with entry-point loading off."""
    _install(session, ".")
    session.run("pytest", "tests", *session.posargs, env={"DEEPCORE_LOAD_PLUGINS": ""})


def _sibling_plugins(path: str) -> list[str]:
    """The plugins of this repository that the plugin at ``path`` depends on (installed from
    here, not from an index)."""
    deps = nox.project.load_toml(f"{path}/pyproject.toml")["project"]["dependencies"]
    names = {d.split(">")[0].split("=")[0].split("<")[0].strip() for d in deps}
    return [f"plugins/deepcore-{n}" for n in PLUGINS if f"deepcore-{n}" in names]


@nox.session(tags=["plugins"])
@nox.parametrize("name", PLUGINS, ids=PLUGINS)
def plugin(session: nox.Session, name: str) -> None:
    """The core plus one plugin (and the plugins it declares it needs): proves it stands
    alone."""
    path = f"plugins/deepcore-{name}"
    _install(session, ".", *_sibling_plugins(path), path)
    session.run("python", "-c", f"import deepcore_{name.replace('-', '_')}")
    session.run("deepcore", "--strict-plugins", "list-methods", "--json", silent=True)
    session.run("pytest", f"{path}/tests", *session.posargs)


@nox.session
def example_plugin(session: nox.Session) -> None:
    """The core plus the example plugin: third-party registration through an entry point."""
    _install(session, ".", EXAMPLE)
    session.run("deepcore", "--strict-plugins", "list-methods", "--family", "example")
    session.run("pytest", f"{EXAMPLE}/tests", *session.posargs)


@nox.session
def observer_plugin(session: nox.Session) -> None:
    """The core plus the TensorBoard observer example: observer hooks through an entry point."""
    _install(session, ".", OBSERVER)
    session.run("deepcore", "--strict-plugins", "plugins")
    session.run("pytest", f"{OBSERVER}/tests", *session.posargs)


@nox.session
def integration(session: nox.Session) -> None:
    """Everything installed together: no name clashes, env switches, every method end to end."""
    _install(session, ".", *[f"plugins/deepcore-{n}" for n in PLUGINS], EXAMPLE)
    session.run("deepcore", "--strict-plugins", "list-methods")
    session.run(
        "pytest", "tests", "-m", "integration", *session.posargs, env={"DEEPCORE_INTEGRATION": "1"}
    )
