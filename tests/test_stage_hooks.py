"""Plugins can take over a stage for their methods or for all, through the hooks."""

from __future__ import annotations

import numpy as np
import pytest

from deepcore_core import (
    Need,
    PluginError,
    PluginHost,
    ScoreSelector,
    Selection,
    Selector,
    hookimpl,
    select,
)


class Largest(ScoreSelector):
    """Keep the largest first feature."""

    name = "largest"
    family = "test"
    needs = frozenset({Need.FEATURES})

    def compute_scores(self, ctx):
        return ctx.features[:, 0].astype(float)


class Registrar:
    @hookimpl
    def register_selectors(self, register):
        register(Largest)


def make_host(*extra):
    host = PluginHost(load_entrypoints=False)
    host.register(Registrar(), "largest-plugin")
    for i, p in enumerate(extra):
        host.register(p, f"extra-{i}")
    return host


X = np.array([[3.0], [1.0], [5.0], [2.0], [4.0], [0.0]])


def test_score_selector_keeps_top_and_records_scores():
    sel = select("largest", features=X, fraction=0.5, balance=False, host=make_host())
    assert sel.indices.tolist() == [2, 4, 0]
    assert sel.scores.tolist() == X[:, 0].tolist()
    assert sel.meta["method"] == "largest" and sel.meta["plugin"] == "largest-plugin"


def test_user_scores_replace_computed_scores():
    s = np.array([0.0, 9.0, 1.0, 8.0, 2.0, 7.0])
    sel = select("largest", features=X, scores=s, budget=2, balance=False, host=make_host())
    assert sel.indices.tolist() == [1, 3]


def test_score_hook_override_for_one_method():
    class Reverse:
        @hookimpl
        def score(self, selector, ctx):
            if selector.name != "largest":
                return None
            return -ctx.features[:, 0]

    sel = select("largest", features=X, budget=2, balance=False, host=make_host(Reverse()))
    assert sel.indices.tolist() == [5, 1]


def test_select_hook_override_for_all_methods():
    class FirstK:
        @hookimpl
        def select(self, selector, ctx):
            return Selection(np.arange(ctx.total))

    sel = select("uniform", features=X, budget=3, balance=False, host=make_host(FirstK()))
    assert sel.indices.tolist() == [0, 1, 2] and sel.meta["method"] == "uniform"


def test_embed_hook_fills_features_when_a_dataset_is_given():
    from deepcore_core.context import SelectionContext
    from deepcore_core.workflow import run_selection

    class Embedder:
        @hookimpl
        def train(self, ctx):
            return "model"

        @hookimpl
        def embed(self, ctx):
            class Out:
                features = np.array(ctx.dataset, dtype=np.float32)
                probs = None

            return Out()

    host = make_host(Embedder())
    ctx = SelectionContext(n=6, dataset=X, balance=False)
    sel = run_selection(host, host.create_selector("largest"), ctx, budget=1)
    assert sel.indices.tolist() == [2] and ctx.model == "model"


def test_bad_pick_is_reported_as_plugin_error():
    class Short(Selector):
        """Returns too few."""

        name = "short"

        def pick(self, ctx, pool, k, rng):
            from deepcore_core import Pick

            return Pick(pool[: k - 1])

    class Reg:
        @hookimpl
        def register_selectors(self, register):
            register(Short)

    host = PluginHost(load_entrypoints=False)
    host.register(Reg(), "short")
    with pytest.raises(PluginError, match="picked 2 samples for a budget of 3"):
        select("short", features=X, budget=3, balance=False, host=host)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -1.0])
def test_bad_weights_are_rejected_at_selection_time(bad):
    from deepcore_core import Pick

    class Weighted(Selector):
        """Returns one bad weight."""

        name = "weighted"

        def pick(self, ctx, pool, k, rng):
            w = np.ones(k)
            w[0] = bad
            return Pick(pool[:k], w)

    class Reg:
        @hookimpl
        def register_selectors(self, register):
            register(Weighted)

    host = PluginHost(load_entrypoints=False)
    host.register(Reg(), "weighted")
    with pytest.raises(PluginError, match=r"'weighted' \(.*\) returned weights that are not"):
        select("weighted", features=X, budget=3, balance=False, host=host)


def test_plugins_add_datasets_and_networks():
    import torch
    from torch import nn

    from deepcore_core.data import DatasetInfo
    from deepcore_core.data.catalog import load_digits
    from deepcore_core.nets import Network, NetworkInfo

    def tiny(ch, c, s):
        return Network("tiny", nn.Flatten(), ch * s * s, c)

    class Extra:
        @hookimpl
        def register_datasets(self, register):
            register(DatasetInfo("digits-copy", load_digits, "digits again", needs_root=False))

        @hookimpl
        def register_networks(self, register):
            register(NetworkInfo("tiny", tiny, "a linear model"))

    host = PluginHost(load_entrypoints=False)
    host.register(Extra(), "extra")
    data = host.datasets.load("digits-copy", None)
    net = host.networks.build("tiny", data.channels, data.num_classes, data.image_size)
    assert net(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    assert "digits" in host.datasets.names() and "lenet" in host.networks.names()
