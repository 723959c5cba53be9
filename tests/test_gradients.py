"""The closed-form last-layer gradient embedding against autograd."""

from __future__ import annotations

import numpy as np
import pytest

from deepcore_core import GradEmbedding, loader_batch_scale, softmax

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


def test_loader_batch_scale_is_one_over_each_batch_size():
    s = loader_batch_scale(600, 256)
    assert s.dtype == np.float32 and s.shape == (600,)
    assert np.all(s[:512] == np.float32(1 / 256)) and np.all(s[512:] == np.float32(1 / 88))
    assert np.all(loader_batch_scale(512, 256) == np.float32(1 / 256))
    assert loader_batch_scale(3, 256).tolist() == pytest.approx([1 / 3] * 3)
    with pytest.raises(ValueError, match="batch must be >= 1, got 0"):
        loader_batch_scale(5, 0)


def test_rows_with_loss_batch_equal_autograd_of_a_batch_mean_loss():
    """The rows of a pool, read in batches of 4 with a mean loss per batch (as a data loader
    and ``CrossEntropyLoss()`` give them), against autograd sample by sample."""
    g = torch.Generator().manual_seed(1)
    n, d, c, batch = 23, 5, 4, 4
    h = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = torch.randint(0, c, (n,), generator=g)
    layer = torch.nn.Linear(d, c).double()
    pool = np.array([2, 3, 5, 7, 11, 13, 17, 19, 22, 0, 1])  # any order: the loader's
    rows = []
    for lo in range(0, pool.size, batch):
        idx = torch.as_tensor(pool[lo : lo + batch])
        out = layer(h[idx]).detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(torch.nn.functional.cross_entropy(out, y[idx]), out)
        for r in range(len(idx)):  # the batch-mean loss's gradient of one sample's logits
            rows.append(torch.cat([grad[r], (grad[r][:, None] * h[idx[r]][None]).flatten()]))
    ref = torch.stack(rows).numpy()
    with torch.no_grad():
        probs = torch.softmax(layer(h), 1).numpy()
    emb = GradEmbedding.from_outputs(probs, y.numpy(), h.numpy())
    scaled = emb.rows(pool, loss_batch=batch)
    np.testing.assert_allclose(scaled.materialize(), ref, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(scaled.norms(), np.linalg.norm(ref, axis=1), rtol=1e-5)
    np.testing.assert_array_equal(emb.rows(pool).residual, emb.residual[pool])
