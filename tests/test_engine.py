"""The training engine, the pretraining cache and the embedding engine on digits."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from deepcore_core import GradEmbedding, PluginHost
from deepcore_core.engine.embedding import compute_embedding
from deepcore_core.engine.pretrain import TRAINED_COUNT, PretrainSpec, pretrain
from deepcore_core.engine.training import TrainConfig, evaluate, train_model

HOST = PluginHost(load_entrypoints=False)
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def digits():
    return HOST.datasets.load("digits", None)


def lenet(data, seed=0):
    torch.manual_seed(seed)
    return HOST.networks.build("lenet", data.channels, data.num_classes, data.image_size)


def test_cosine_schedule_is_exact():
    cfg = TrainConfig(lr=0.1, min_lr=0.001)
    total = 100
    lrs = [cfg.lr_at(i, total) for i in range(total)]
    assert lrs[0] == pytest.approx(0.1)
    assert lrs[50] == pytest.approx(0.001 + 0.5 * 0.099)
    assert all(a >= b for a, b in itertools.pairwise(lrs))
    assert cfg.lr_at(total, total) == pytest.approx(0.001)
    assert TrainConfig(schedule="constant").lr_at(7, 10) == 0.1


def test_training_reaches_known_accuracy_on_digits(digits):
    res = train_model(
        lenet(digits), digits.train, TrainConfig(epochs=60, seed=0), CPU, test=digits.test
    )
    assert res.final_accuracy >= 0.93
    acc, loss = evaluate(res.model, digits.test, CPU)
    assert acc == pytest.approx(res.final_accuracy) and math.isfinite(loss)


def test_same_seed_same_model(digits):
    cfg = TrainConfig(epochs=2, seed=3)
    a = train_model(lenet(digits, 1), digits.train, cfg, CPU).model
    b = train_model(lenet(digits, 1), digits.train, cfg, CPU).model
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_uniform_weights_equal_no_weights_and_zero_weights_ignore_samples(digits):
    cfg = TrainConfig(epochs=2, seed=0)
    plain = train_model(lenet(digits), digits.train, cfg, CPU).model
    n = len(digits.train)
    doubled = train_model(lenet(digits), digits.train, cfg, CPU, weights=np.full(n, 2.0)).model
    for pa, pb in zip(plain.parameters(), doubled.parameters(), strict=True):
        assert torch.allclose(pa, pb, atol=1e-5)
    w = (digits.train.labels != 3).astype(float)
    res = train_model(lenet(digits), digits.train, TrainConfig(epochs=20, seed=0), CPU, weights=w)
    x, y, _ = next(digits.test.batches(torch.arange(len(digits.test)), 1000))
    pred = res.model.eval()(x).argmax(1)
    assert (pred[y == 3] == 3).float().mean() < 0.2  # class 3 was never learned
    assert (pred[y != 3] == y[y != 3]).float().mean() > 0.8


def test_checkpoint_resume_matches_uninterrupted(digits, tmp_path, monkeypatch):
    import deepcore_core.engine.training as training

    monkeypatch.setattr(training, "CHECKPOINT_SECONDS", 0.0)  # every epoch
    cfg = TrainConfig(epochs=4, seed=0)
    ref = train_model(lenet(digits), digits.train, cfg, CPU).model

    def die_after_two(epoch, metrics):  # runs after the epoch's checkpoint is saved
        if epoch == 2:
            raise KeyboardInterrupt

    ckpt = tmp_path / "ckpt.pt"
    with pytest.raises(KeyboardInterrupt):
        train_model(
            lenet(digits), digits.train, cfg, CPU, checkpoint=ckpt, callbacks=[die_after_two]
        )
    res = train_model(lenet(digits), digits.train, cfg, CPU, checkpoint=ckpt)
    assert [h["epoch"] for h in res.history] == [1, 2, 3, 4]
    for pa, pb in zip(ref.parameters(), res.model.parameters(), strict=True):
        assert torch.allclose(pa, pb, atol=1e-6)
    from deepcore_core import DeepcoreError

    with pytest.raises(DeepcoreError, match="other settings"):
        train_model(lenet(digits), digits.train, TrainConfig(epochs=5), CPU, checkpoint=ckpt)


def test_a_checkpoint_removed_before_it_is_read_means_a_fresh_start(digits, tmp_path, monkeypatch):
    """Another process filling the same cache entry removes its checkpoint when it is done."""
    import deepcore_core.engine.training as training

    ckpt = tmp_path / "ckpt.pt"
    cfg = TrainConfig(epochs=2, seed=0)
    monkeypatch.setattr(training, "CHECKPOINT_SECONDS", 0.0)
    train_model(lenet(digits), digits.train, TrainConfig(epochs=1, seed=0), CPU, checkpoint=ckpt)
    assert ckpt.is_file()
    real_load = torch.load

    def load_after_the_other_process_finished(path, *args, **kwargs):
        ckpt.unlink(missing_ok=True)
        return real_load(path, *args, **kwargs)

    monkeypatch.setattr(training.torch, "load", load_after_the_other_process_finished)
    res = train_model(lenet(digits), digits.train, cfg, CPU, checkpoint=ckpt)
    assert [h["epoch"] for h in res.history] == [1, 2]
    ref = train_model(lenet(digits), digits.train, cfg, CPU).model
    for pa, pb in zip(ref.parameters(), res.model.parameters(), strict=True):
        assert torch.allclose(pa, pb, atol=1e-6)


def test_dynamics_are_recorded(digits):
    res = train_model(
        lenet(digits), digits.train, TrainConfig(epochs=3, augment=False), CPU, record_dynamics=True
    )
    d = res.dynamics
    assert d.loss.shape == d.correct.shape == d.margin.shape == (3, len(digits.train))
    assert (d.loss > 0).all()
    assert np.array_equal(d.correct, d.margin > 0)
    assert d.correct[-1].mean() > d.correct[0].mean()


def test_pretraining_is_cached(digits, tmp_path):
    spec = PretrainSpec("lenet", 2, TrainConfig(epochs=2, augment=False), cache_dir=tmp_path)
    before = TRAINED_COUNT["n"]
    a = pretrain(digits, spec, seed=0, device="cpu", networks=HOST.networks)
    b = pretrain(digits, spec, seed=0, device="cpu", networks=HOST.networks)
    c = pretrain(digits, spec, seed=1, device="cpu", networks=HOST.networks)
    assert TRAINED_COUNT["n"] - before == 2 and b.cached and not a.cached and not c.cached
    assert a.folder == b.folder != c.folder
    for pa, pb in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert torch.equal(pa.cpu(), pb.cpu())
    assert np.array_equal(a.dynamics.loss, b.dynamics.loss)


def test_closed_form_gradient_embedding_equals_autograd(digits):
    model = train_model(lenet(digits), digits.train, TrainConfig(epochs=1), CPU).model.eval()
    sub = digits.train.subset(np.arange(16))
    emb = compute_embedding(model, sub, CPU)
    g = GradEmbedding.from_outputs(emb.probs, sub.labels, emb.features)
    x, y, _ = next(sub.batches(torch.arange(16), 16))
    rows = []
    for i in range(16):
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(x[i : i + 1]), y[i : i + 1]).backward()
        rows.append(torch.cat([model.head.bias.grad, model.head.weight.grad.flatten()]))
    ref = torch.stack(rows).numpy()
    np.testing.assert_allclose(g.materialize(), ref, rtol=1e-4, atol=1e-6)


def test_divergence_is_a_clear_error(digits):
    from deepcore_core import DeepcoreError

    with pytest.raises(DeepcoreError, match="training diverged in epoch 1 .* lower the learning"):
        train_model(lenet(digits), digits.train, TrainConfig(epochs=2, lr=1e6, min_lr=0), CPU)


def test_selection_model_divergence_names_its_own_setting(digits, tmp_path):
    from deepcore_core import DeepcoreError

    config = TrainConfig(epochs=2, lr=1e6, min_lr=0, augment=False)
    spec = PretrainSpec("lenet", 2, config, cache_dir=tmp_path)
    with pytest.raises(DeepcoreError, match=r"selection model lenet seed 0: .*\(--selection-lr\)"):
        pretrain(digits, spec, 0, "cpu", HOST.networks)
    assert not list((tmp_path / "selection-models").glob("*/meta.json"))


def test_epoch_callbacks_see_every_epoch_and_periodic_evaluation(digits):
    seen: list[tuple[int, dict]] = []
    cfg = TrainConfig(epochs=4, seed=0, eval_every=2)
    train_model(
        lenet(digits),
        digits.train,
        cfg,
        CPU,
        test=digits.test,
        callbacks=[lambda e, m: seen.append((e, m))],
    )
    assert [e for e, _ in seen] == [1, 2, 3, 4]
    assert all({"train_loss", "lr"} <= set(m) for _, m in seen)
    assert [("test_accuracy" in m) for _, m in seen] == [False, True, False, True]
    assert seen[0][1]["lr"] > seen[-1][1]["lr"]  # the cosine schedule


def test_recorded_dynamics_match_their_definitions():
    from deepcore_core.engine.recording import Recorder

    n, c = 5, 3
    recorder = Recorder(2, n, CPU)
    dyn = recorder.state
    g = torch.Generator().manual_seed(0)
    y = torch.tensor([0, 1, 2, 0, 1])
    outs = [torch.randn(n, c, generator=g) for _ in range(2)]
    for epoch, out in enumerate(outs):
        for idx in (torch.tensor([3, 0]), torch.tensor([1, 4, 2])):  # two batches per epoch
            per = torch.nn.functional.cross_entropy(out[idx], y[idx], reduction="none")
            recorder.record(epoch, idx, out[idx], y[idx], per)
    p0, p1 = (o.softmax(1).double() for o in outs)
    rows = torch.arange(n)
    other = p1.clone()
    other[rows, y] = 0
    torch.testing.assert_close(dyn["max_other"][1].double(), other.max(1).values)
    torch.testing.assert_close(dyn["sum_sq"][1].double(), (p1**2).sum(1))
    torch.testing.assert_close((-dyn["loss"][1].double()).exp(), p1[rows, y])
    change = (p1 * (p1 / p0).log()).abs().sum(1)
    torch.testing.assert_close(dyn["change"][1].double(), change, rtol=1e-5, atol=1e-6)
    assert (dyn["change"][0] == 0).all()
    logits = outs[1].double()
    masked = logits.clone()
    masked[rows, y] = -float("inf")
    torch.testing.assert_close(dyn["margin"][1].double(), logits[rows, y] - masked.max(1).values)


def test_dynamics_without_the_newer_arrays_say_what_is_missing(tmp_path):
    from deepcore_core import DeepcoreError
    from deepcore_core.dynamics import load_dynamics
    from deepcore_core.engine.training import Dynamics

    old = Dynamics(
        np.zeros((2, 3), np.float32), np.ones((2, 3), bool), np.zeros((2, 3), np.float32)
    )
    old.save(tmp_path / "d.npz")
    back = load_dynamics(tmp_path / "d.npz")
    assert back.max_other is None and np.allclose(back.p_true, 1.0)
    with pytest.raises(DeepcoreError, match="'tdds' needs the dynamics' 'change'"):
        back.need("change", "tdds")


@pytest.mark.parametrize("running", [None, "running"], ids=["full", "running"])
def test_resume_of_a_selection_model_keeps_its_dynamics(digits, tmp_path, monkeypatch, running):
    import deepcore_core.engine.training as training
    from deepcore_core import DeepcoreError, RunningSpec

    monkeypatch.setattr(training, "CHECKPOINT_SECONDS", 0.0)
    cfg = TrainConfig(epochs=4, seed=0, augment=False)
    kw = {"record_dynamics": True, "running": RunningSpec(window=2, horizon=3) if running else None}
    ref = train_model(lenet(digits), digits.train, cfg, CPU, **kw).dynamics

    def die_after_two(epoch, metrics):
        if epoch == 2:
            raise KeyboardInterrupt

    ckpt = tmp_path / "ckpt.pt"
    with pytest.raises(KeyboardInterrupt):
        train_model(
            lenet(digits), digits.train, cfg, CPU, checkpoint=ckpt, callbacks=[die_after_two], **kw
        )
    res = train_model(lenet(digits), digits.train, cfg, CPU, checkpoint=ckpt, **kw).dynamics
    assert ref is not None and res is not None and type(res) is type(ref)
    for name, value in ref.arrays().items():
        np.testing.assert_allclose(res.arrays()[name], value, rtol=1e-5, atol=1e-6)
    if running:  # a checkpoint of running statistics does not resume a full recording
        with pytest.raises(DeepcoreError, match="other training dynamics"):
            full = {"record_dynamics": True}
            train_model(lenet(digits), digits.train, cfg, CPU, checkpoint=ckpt, **full)


def test_embedding_is_the_same_at_the_cpu_default_batch_as_at_others(digits):
    from deepcore_core.engine.embedding import default_batch_size

    model = train_model(lenet(digits), digits.train, TrainConfig(epochs=1), CPU).model.eval()
    assert default_batch_size(CPU, model) == 512  # LeNet's own CPU batch
    assert default_batch_size(CPU) == 128  # a network that names none
    assert default_batch_size(torch.device("cuda"), model) == 512
    ref = compute_embedding(model, digits.train, CPU)  # LeNet's CPU default, 512
    for bs in (128, 100):  # (tiny batches may take other BLAS kernels, rounding otherwise)
        emb = compute_embedding(model, digits.train, CPU, bs)
        assert np.array_equal(emb.features, ref.features), bs
        assert np.array_equal(emb.logits, ref.logits), bs


def test_outputs_held_on_a_device_come_back_whole_and_in_order(digits, monkeypatch):
    """On an accelerator the outputs of many batches go to the host in one copy; forced on
    the CPU with a small limit (a flush every few batches) and a large one (one at the end),
    the embedding equals the batch-by-batch one."""
    from deepcore_core.engine import embedding

    model = train_model(lenet(digits), digits.train, TrainConfig(epochs=1), CPU).model.eval()
    ref = compute_embedding(model, digits.train, CPU, 100)
    monkeypatch.setattr(embedding, "_host_outputs", lambda device: False)
    for limit in (100 * 94 * 4 * 3, 2**40):
        monkeypatch.setattr(embedding, "DEVICE_OUTPUT_BYTES", limit)
        emb = compute_embedding(model, digits.train, CPU, 100)
        assert np.array_equal(emb.features, ref.features) and np.array_equal(emb.logits, ref.logits)
