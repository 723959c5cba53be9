"""The closed-form last-layer gradient embedding against autograd."""

from __future__ import annotations

import numpy as np
import pytest

from deepcore_core import GradEmbedding, softmax

torch = pytest.importorskip("torch")


@pytest.fixture
def setup():
    g = torch.Generator().manual_seed(0)
    n, d, c = 12, 5, 4
    h = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = torch.randint(0, c, (n,), generator=g)
    layer = torch.nn.Linear(d, c).double()
    rows = []
    for i in range(n):
        layer.zero_grad()
        torch.nn.functional.cross_entropy(layer(h[i : i + 1]), y[i : i + 1]).backward()
        rows.append(torch.cat([layer.bias.grad, layer.weight.grad.flatten()]))
    autograd = torch.stack(rows).numpy()
    with torch.no_grad():
        probs = torch.softmax(layer(h), 1).numpy()
    emb = GradEmbedding.from_outputs(probs, y.numpy(), h.numpy())
    return emb, autograd


def test_materialize_equals_autograd(setup):
    emb, ref = setup
    assert emb.dim == ref.shape[1]
    np.testing.assert_allclose(emb.materialize(), ref, rtol=1e-5, atol=1e-6)


def test_norms_gram_cosine_closed_form(setup):
    emb, ref = setup
    np.testing.assert_allclose(emb.norms(), np.linalg.norm(ref, axis=1), rtol=1e-5)
    rows, cols = np.arange(5), np.arange(3, 12)
    np.testing.assert_allclose(emb.gram(rows, cols), ref[rows] @ ref[cols].T, rtol=1e-4, atol=1e-6)
    n = np.linalg.norm(ref, axis=1)
    cos = (ref @ ref.T) / np.outer(n, n)
    np.testing.assert_allclose(emb.cosine(np.arange(12)), cos, rtol=1e-4, atol=1e-5)


def test_softmax_stable():
    p = softmax(np.array([[1000.0, 0.0], [0.0, 0.0]]))
    assert np.isfinite(p).all() and np.allclose(p.sum(1), 1)
