from __future__ import annotations

import textwrap

import pytest

import deepcore_core.plugins as plugins_mod
from deepcore_core import DeepcoreError, PluginError, PluginHost

GOOD = """
from deepcore_core import Selector, Pick, hookimpl

class Good(Selector):
    '''First-k test selector.'''
    name = "{name}"
    family = "test"
    def pick(self, ctx, pool, k, rng):
        return Pick(pool[:k])

@hookimpl
def register_selectors(register):
    register(Good)
"""


class FakeDist:
    def __init__(self, name: str, version: str) -> None:
        self.metadata = {"Name": name}
        self.version = version


class FakeEntryPoint:
    def __init__(self, name: str, module: str, dist: str, version: str = "1.0") -> None:
        self.name, self.value, self.group = name, module, "deepcore"
        self.dist = FakeDist(dist, version)

    def load(self):
        import importlib

        return importlib.import_module(self.value)


@pytest.fixture
def fake_plugins(tmp_path, monkeypatch):
    """Write plugin modules to a temp dir and expose them as entry points."""
    monkeypatch.syspath_prepend(str(tmp_path))
    eps: list[FakeEntryPoint] = []

    def add(ep_name: str, source: str, dist: str) -> None:
        mod = f"fakeplug_{ep_name.replace('-', '_')}_{len(eps)}_{id(tmp_path)}"
        (tmp_path / f"{mod}.py").write_text(textwrap.dedent(source))
        eps.append(FakeEntryPoint(ep_name, mod, dist))

    monkeypatch.setattr(plugins_mod.md, "entry_points", lambda group: list(eps))
    monkeypatch.delenv("DEEPCORE_LOAD_PLUGINS", raising=False)
    monkeypatch.delenv("DEEPCORE_DISABLE_PLUGINS", raising=False)
    monkeypatch.delenv("DEEPCORE_STRICT_PLUGINS", raising=False)
    return add


def test_entry_point_plugin_is_discovered(fake_plugins):
    fake_plugins("good", GOOD.format(name="first-k"), "deepcore-good")
    host = PluginHost()
    info = host.registry.get("first-k")
    assert (info.plugin, info.distribution, info.version) == ("good", "deepcore-good", "1.0")
    rec = host.records["good"]
    assert rec.methods == ["first-k"] and "register_selectors" in rec.hooks


def test_broken_plugin_warns_once_and_rest_works(fake_plugins, caplog):
    fake_plugins("broken", "import no_such_module_xyz\n", "deepcore-broken")
    fake_plugins("good", GOOD.format(name="first-k"), "deepcore-good")
    host = PluginHost()
    assert "first-k" in host.registry and "uniform" in host.registry
    err = [r.getMessage() for r in caplog.records if r.name == "deepcore"]
    assert len(err) == 1
    assert "plugin 'broken' (deepcore-broken 1.0) failed to load: ModuleNotFoundError" in err[0]
    assert host.records["broken"].status == "error"
    with pytest.raises(DeepcoreError, match="plugin.*broken failed to load and may provide it"):
        host.method("kcenter")


def test_strict_mode_raises(fake_plugins, monkeypatch):
    fake_plugins("broken", "raise RuntimeError('boom')\n", "deepcore-broken")
    with pytest.raises(PluginError, match="RuntimeError: boom"):
        PluginHost(strict=True)
    monkeypatch.setenv("DEEPCORE_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError):
        PluginHost()


def test_plugin_failing_in_register_selectors(fake_plugins, caplog):
    src = """
    from deepcore_core import hookimpl
    @hookimpl
    def register_selectors(register):
        raise ValueError("bad registration")
    """
    fake_plugins("badreg", src, "deepcore-badreg")
    host = PluginHost()
    assert "uniform" in host.registry
    assert host.records["badreg"].status == "error"
    assert "ValueError: bad registration" in caplog.text


def test_duplicate_method_names_is_error_naming_both(fake_plugins):
    fake_plugins("one", GOOD.format(name="same"), "deepcore-one")
    fake_plugins("two", GOOD.format(name="same"), "deepcore-two")
    host = PluginHost()
    match = "registered twice: by deepcore-(one|two).*deepcore-(one|two)"
    with pytest.raises(PluginError, match=match):
        host.create_selector("same")  # never a silent override
    assert "same" not in host.registry and "uniform" in host.registry
    assert {host.records[p].status for p in ("one", "two")} == {"error"}
    with pytest.raises(PluginError, match=match):
        PluginHost(strict=True).registry  # noqa: B018


def test_duplicate_of_builtin_names_core(fake_plugins):
    fake_plugins("clash", GOOD.format(name="uniform"), "deepcore-clash")
    with pytest.raises(PluginError, match="deepcore-core.*deepcore-clash"):
        PluginHost().create_selector("uniform")


def test_plugins_command_lists_a_clash_as_the_plugins_status(fake_plugins):
    import json

    from typer.testing import CliRunner

    from deepcore_core.cli import create_app

    fake_plugins("one", GOOD.format(name="same"), "deepcore-one")
    fake_plugins("two", GOOD.format(name="same"), "deepcore-two")
    r = CliRunner().invoke(create_app(), ["plugins", "--json"])
    assert r.exit_code == 0, r.output
    rows = {p["name"]: p for p in json.loads(r.output)}
    assert rows["one"]["status"] == rows["two"]["status"] == "error"
    assert "registered twice" in rows["one"]["error"] and rows["two"]["methods"] == ["same"]
    r = CliRunner().invoke(create_app(), ["list-methods"])
    assert r.exit_code == 0 and "uniform" in r.output


def test_load_and_disable_env(fake_plugins, monkeypatch):
    fake_plugins("a", GOOD.format(name="meth-a"), "deepcore-a")
    fake_plugins("b", GOOD.format(name="meth-b"), "deepcore-b")
    monkeypatch.setenv("DEEPCORE_LOAD_PLUGINS", "deepcore-a")
    assert PluginHost().registry.names() == ["meth-a", "uniform"]
    monkeypatch.setenv("DEEPCORE_LOAD_PLUGINS", "")
    host = PluginHost()
    assert host.registry.names() == ["uniform"]
    assert host.records["a"].status == "disabled"
    monkeypatch.delenv("DEEPCORE_LOAD_PLUGINS")
    monkeypatch.setenv("DEEPCORE_DISABLE_PLUGINS", "b")
    assert PluginHost().registry.names() == ["meth-a", "uniform"]
    assert PluginHost(load_entrypoints=False).registry.names() == ["uniform"]


def test_registering_a_non_selector_is_an_error(fake_plugins):
    src = """
    from deepcore_core import hookimpl
    @hookimpl
    def register_selectors(register):
        register(int)
    """
    fake_plugins("notsel", src, "deepcore-notsel")
    host = PluginHost()  # the rest works; the plugin is listed with the error
    assert "uniform" in host.registry
    assert host.records["notsel"].status == "error"
    assert "not a Selector subclass" in host.records["notsel"].error
    with pytest.raises(PluginError, match="not a Selector subclass"):
        PluginHost(strict=True).registry  # noqa: B018


def test_abstract_selector_rejected(fake_plugins):
    src = """
    from deepcore_core import ScoreSelector, hookimpl
    class Half(ScoreSelector):
        'Forgot compute_scores.'
        name = "half"
    @hookimpl
    def register_selectors(register):
        register(Half)
    """
    fake_plugins("half", src, "deepcore-half")
    host = PluginHost()  # the rest works; the plugin is listed with the error
    assert "uniform" in host.registry
    assert host.records["half"].status == "error"
    assert "Half, which does not implement compute_scores" in host.records["half"].error
    with pytest.raises(PluginError, match="Half, which does not implement compute_scores"):
        PluginHost(strict=True).registry  # noqa: B018


def test_bad_method_name_rejected(fake_plugins):
    fake_plugins("badname", GOOD.format(name="Bad Name"), "deepcore-badname")
    host = PluginHost()  # the rest works; the plugin is listed with the error
    assert "uniform" in host.registry
    assert host.records["badname"].status == "error"
    assert "invalid name 'Bad Name'" in host.records["badname"].error
    with pytest.raises(PluginError, match="invalid name 'Bad Name'"):
        PluginHost(strict=True).registry  # noqa: B018


def test_unknown_method_suggests():
    host = PluginHost(load_entrypoints=False)
    with pytest.raises(DeepcoreError, match="unknown method 'unifrom'; did you mean 'uniform'"):
        host.create_selector("unifrom")


MISSPELLED = """
from deepcore_core import Selector, Pick, hookimpl

class Good(Selector):
    "First-k test selector."
    name = "first-k"
    family = "test"
    def pick(self, ctx, pool, k, rng):
        return Pick(pool[:k])

@hookimpl
def register_selector(register):
    register(Good)
"""


def test_misspelled_hook_is_a_warning_with_a_suggestion(fake_plugins, caplog):
    fake_plugins("typo", MISSPELLED, "deepcore-typo")
    host = PluginHost()
    rec = host.records["typo"]
    assert rec.status == "error"
    assert "unknown hook(s) 'register_selector' (did you mean 'register_selectors'?)" in rec.error
    assert "did you mean 'register_selectors'" in caplog.text
    assert "first-k" not in host.registry and "uniform" in host.registry


def test_misspelled_hook_is_an_error_in_strict_mode(fake_plugins):
    fake_plugins("typo", MISSPELLED, "deepcore-typo")
    with pytest.raises(PluginError, match="unknown hook.*register_selector"):
        PluginHost(strict=True)


def test_check_pending_passes_for_every_installed_plugin():
    host = PluginHost(load_entrypoints=True, strict=True)
    host.pm.check_pending()  # pluggy's own check: no implementation without a spec
    assert not host.failed_plugins()


def test_tracing_logs_every_hook_call_including_registration(fake_plugins, capsys):
    from deepcore_core import select

    fake_plugins("good", GOOD.format(name="first-k"), "deepcore-good")
    host = PluginHost(trace=True)
    select("first-k", labels=[0, 1, 0, 1], budget=2, host=host)
    text = capsys.readouterr().err
    assert "hook register_selectors(register=" in text and "implementations: good" in text
    for hook in ("score", "select", "on_selection_end"):
        assert f"hook {hook}(" in text
    assert "hook select returned Selection(" in text


def test_tracing_is_switched_on_by_the_environment(monkeypatch, capsys):
    monkeypatch.setenv("DEEPCORE_TRACE_PLUGINS", "1")
    _ = PluginHost(load_entrypoints=False).registry
    assert "deepcore: INFO: hook register_selectors" in capsys.readouterr().err
    monkeypatch.setenv("DEEPCORE_TRACE_PLUGINS", "0")
    _ = PluginHost(load_entrypoints=False).registry
    assert "hook" not in capsys.readouterr().err


def test_registration_hooks_go_through_pluggy_monitoring(fake_plugins):
    fake_plugins("good", GOOD.format(name="first-k"), "deepcore-good")
    host = PluginHost()
    calls: list[str] = []
    host.pm.add_hookcall_monitoring(lambda name, impls, kw: calls.append(name), lambda *a: None)
    _ = host.registry
    assert calls.count("register_selectors") == 2  # the core's uniform and the plugin's


def test_cli_strict_plugins_flag_stops_on_a_broken_plugin(fake_plugins):
    from typer.testing import CliRunner

    from deepcore_core.cli import create_app

    fake_plugins("broken", "raise RuntimeError('boom')\n", "deepcore-broken")
    app = create_app()
    r = CliRunner().invoke(app, ["list-methods"])
    assert r.exit_code == 0 and "uniform" in r.output
    r = CliRunner().invoke(app, ["--strict-plugins", "list-methods"])
    assert r.exit_code == 2
    assert r.output.strip().splitlines()[-1] == (
        "Error: plugin 'broken' (deepcore-broken 1.0) failed to load: RuntimeError: boom"
    )


def test_a_method_of_a_disabled_plugin_names_the_plugin(fake_plugins, monkeypatch):
    fake_plugins("good", GOOD.format(name="first-k"), "deepcore-good")
    monkeypatch.setenv("DEEPCORE_DISABLE_PLUGINS", "good")
    host = PluginHost()
    with pytest.raises(DeepcoreError, match=r"plugin\(s\) good \(deepcore-good\) are disabled"):
        host.create_selector("first-k")
