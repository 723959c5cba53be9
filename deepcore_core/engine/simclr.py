"""SimCLR (Chen et al., ICML 2020): a self-supervised encoder trained on the unlabeled pool.

Two random views of each image (random resized crop keeping 50-100% of the area,
horizontal flip, brightness and contrast jitter, all on the batch at once) pass through the
selection network (LeNet-BN by default) and a two-layer projection head; the NT-Xent loss
(temperature 0.1) pulls each image's two views together against the other 2B - 2 views of
the batch. Adam, cosine learning rate. The embedding is the network's penultimate features,
the head dropped. The crop scale and temperature were chosen on Fashion-MNIST's k-NN figure
(docs/label-free.md).

The trained encoder is cached like a selection model (``<cache>/encoders/<key>``, keyed by
the dataset, the network, the options and the seed), resumes from its checkpoint after a
kill, records what it cost, and, where the dataset has labels, a sanity figure: the k-NN
accuracy (k = 20, cosine) of its test-split embeddings against its training-split ones. The
labels are read for that figure only, never for selection.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from deepcore_core._io import atomic_write, save_torch
from deepcore_core.cache import CacheEntry
from deepcore_core.cost import StageCost, measure
from deepcore_core.data.sources import labels_or_none
from deepcore_core.encoders import Encoder, PoolingOptions
from deepcore_core.engine.config import default_cache_dir
from deepcore_core.engine.devices import seed_everything
from deepcore_core.errors import DeepcoreError
from deepcore_core.options import options_dict
from deepcore_core.progress import Progress
from deepcore_core.selection import dataset_fingerprint

FORMAT = 1


@dataclasses.dataclass(frozen=True)
class SimCLROptions(PoolingOptions):
    """Options of the ``simclr`` encoder."""

    network: str | None = None  #: the backbone (None: the selection network)
    epochs: int = 15  #: passes over the pool
    batch_size: int = 256  #: images per batch (each gives two views)
    lr: float = 1e-3  #: Adam learning rate (cosine to 0)
    temperature: float = 0.1  #: NT-Xent temperature
    projection: int = 128  #: width of the projection head's output
    knn: int = 20  #: neighbours of the k-NN sanity figure
    crop_scale: float = 0.5  #: the smallest share of the image a random crop keeps

    def __post_init__(self) -> None:
        for name, low in (("epochs", 1), ("batch_size", 2), ("projection", 1), ("knn", 1)):
            if getattr(self, name) < low:
                raise ValueError(f"{name} must be at least {low}, got {getattr(self, name)}")
        if not 0 < self.crop_scale <= 1:
            raise ValueError(f"crop_scale must be in (0, 1], got {self.crop_scale}")
        for name in ("lr", "temperature"):
            if not 0 < getattr(self, name) <= 10:
                raise ValueError(f"{name} must be in (0, 10], got {getattr(self, name)}")


def views(x: torch.Tensor, gen: torch.Generator, crop_scale: float = 0.5) -> torch.Tensor:
    """One random view of every image of ``x`` (B x C x H x W, normalised): a crop keeping
    ``crop_scale`` to all of its area, resized back."""
    b = x.shape[0]

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=gen).to(x.device)

    area = crop_scale + (1 - crop_scale) * rand(b)
    ratio = torch.exp(math.log(3 / 4) + (math.log(4 / 3) - math.log(3 / 4)) * rand(b))
    sx = torch.sqrt(area * ratio).clamp(max=1.0)
    sy = torch.sqrt(area / ratio).clamp(max=1.0)
    tx = (1 - sx) * (2 * rand(b) - 1)
    ty = (1 - sy) * (2 * rand(b) - 1)
    flip = torch.where(rand(b) < 0.5, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3, device=x.device)
    theta[:, 0, 0], theta[:, 0, 2] = sx * flip, tx
    theta[:, 1, 1], theta[:, 1, 2] = sy, ty
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    contrast = (0.6 + 0.8 * rand(b)).view(b, 1, 1, 1)
    brightness = (0.8 * rand(b) - 0.4).view(b, 1, 1, 1)
    mean = out.mean((1, 2, 3), keepdim=True)
    return (out - mean) * contrast + mean + brightness


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """The NT-Xent loss of two views' projections (B x P each)."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.T / temperature
    sim.fill_diagonal_(float("-inf"))
    b = z1.shape[0]
    target = torch.cat([torch.arange(b, 2 * b), torch.arange(b)]).to(z.device)
    return F.cross_entropy(sim, target)


class _Backbone(nn.Module):
    """A registered network's penultimate features."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.forward_with_features(x)[1]  # type: ignore[operator]


def knn_accuracy(
    train: np.ndarray, labels: np.ndarray, test: np.ndarray, test_labels: np.ndarray, k: int
) -> float:
    """Accuracy of a k-NN majority vote (cosine, ties to the nearer) of ``test`` rows."""
    from deepcore_core.neighbors import blockwise_topk

    a = F.normalize(torch.as_tensor(np.asarray(train, np.float32)), dim=1)
    b = F.normalize(torch.as_tensor(np.asarray(test, np.float32)), dim=1)
    top, idx = blockwise_topk(lambda lo, hi: b[lo:hi] @ a.T, len(b), min(k, len(a)))
    classes = int(max(labels.max(), test_labels.max())) + 1
    votes = np.zeros((len(b), classes), np.float32)
    rows = np.repeat(np.arange(len(b)), idx.shape[1])
    weight = np.float32(1.0) + np.float32(1e-6) * top.astype(np.float32).ravel()  # ties: nearer
    np.add.at(votes, (rows, labels[idx].ravel()), weight)
    return float((votes.argmax(1) == test_labels).mean()) if len(b) else 0.0


class SimCLR(Encoder):
    """Self-supervised encoder trained here on the unlabeled pool (SimCLR, NT-Xent)."""

    name = "simclr"
    Options = SimCLROptions

    def __init__(self, target: str | None = None, options: Any = None, weights: Any = None):
        if weights:
            raise DeepcoreError("encoder 'simclr' is trained here; it takes no --encoder-weights")
        super().__init__(target, options, None)

    def _network(self, ctx: Any) -> str:
        if self.options.network:
            return self.options.network
        spec = getattr(ctx, "pretrain", None)
        return spec.network if spec is not None else "lenet-bn"

    def _key(self, ctx: Any) -> str:
        import hashlib

        data = ctx.dataset
        payload = {
            "format": FORMAT,
            "dataset": dataset_fingerprint(labels_or_none(data.train), len(data.train), data.name),
            "shape": [data.channels, data.image_size],
            "network": self._network(ctx).lower(),
            "options": options_dict(self.options),
            "seed": ctx.seed,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]

    def identity(self, ctx: Any) -> dict[str, Any]:
        return {"encoder": self.name, "trained": self._key(ctx)}

    def module(self, ctx: Any) -> nn.Module:
        data = ctx.dataset
        key = self._key(ctx)
        folder = Path(ctx.cache_dir or default_cache_dir()) / "encoders" / key
        dev = torch.device(ctx.device)
        seed_everything(ctx.seed)
        net = ctx.networks.build(self._network(ctx), data.channels, max(1, data.num_classes),
                                 data.image_size)  # fmt: skip
        backbone = _Backbone(net)
        entry = CacheEntry(folder, key)
        if entry.usable("encoder.pt", what="encoder cache entry"):
            backbone.load_state_dict(torch.load(folder / "encoder.pt", map_location="cpu",
                                                weights_only=True))  # fmt: skip
            meta = _read_json(folder / "meta.json")
            ctx.costs["selection_model"] = StageCost.of({**meta.get("cost", {}), "reused": True})
        else:
            with measure(ctx.device) as cost:
                earlier = self._train(backbone, data.train, dev, folder)
            # a resumed training counts what its killed runs spent too
            samples = self.options.epochs * len(data.train)
            cost = dataclasses.replace(cost.plus(earlier), samples=samples)
            meta = {"seed": ctx.seed, "network": self._network(ctx),
                    "options": options_dict(self.options), "cost": cost.as_dict()}  # fmt: skip
            meta["knn_accuracy"] = self._sanity(backbone, data, dev)
            entry.write("encoder.pt", lambda fh: save_torch(backbone.state_dict(), fh, folder))
            with atomic_write(folder / "meta.json", "w") as fh:
                json.dump(meta, fh, indent=2)
            (folder.parent / f".{key}.partial.pt").unlink(missing_ok=True)
            ctx.costs["selection_model"] = cost
        ctx.extras.setdefault("encoder", {})["knn_accuracy"] = meta.get("knn_accuracy")
        return backbone.eval().to(dev)

    def _train(
        self, backbone: _Backbone, source: Any, dev: torch.device, folder: Path
    ) -> StageCost:
        """Train ``backbone`` (resuming from the partial checkpoint beside ``folder``);
        returns what the earlier, killed runs of this training spent."""
        o = self.options
        backbone.to(dev).train()
        with torch.no_grad():
            x0 = next(source.batches(torch.arange(min(2, len(source))), 2, device=dev))[0]
            width = int(backbone(x0).shape[1])
        head = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, o.projection))
        head.to(dev)
        params = [*backbone.parameters(), *head.parameters()]
        opt = torch.optim.Adam(params, lr=o.lr, weight_decay=1e-6)
        n = len(source)
        batch = min(o.batch_size, n) if n >= 2 else 2
        steps = n // batch if n >= batch else 1
        total = o.epochs * steps
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total))
        )
        gen = torch.Generator().manual_seed(int(torch.initial_seed()) % (2**63))
        partial = folder.parent / f".{folder.name}.partial.pt"
        start, earlier = 0, StageCost()
        if partial.is_file():  # a killed run resumes from its last finished epoch
            state = torch.load(partial, map_location="cpu", weights_only=False)
            backbone.load_state_dict(state["backbone"])
            head.load_state_dict(state["head"])
            opt.load_state_dict(state["opt"])
            sched.load_state_dict(state["sched"])
            gen.set_state(state["gen"])
            start = int(state["epoch"])
            earlier = StageCost.of(state.get("cost", {}))
        partial.parent.mkdir(parents=True, exist_ok=True)
        t0, c0 = time.perf_counter(), time.process_time()
        with Progress(total - start * steps, "simclr encoder", unit="images") as bar:
            for epoch in range(start, o.epochs):
                order = torch.randperm(n, generator=gen)[: steps * batch]
                seen, loss_sum = 0, 0.0
                for x, _, _ in source.batches(order, batch, device=dev):
                    if len(x) < 2:
                        continue
                    v1, v2 = views(x, gen, o.crop_scale), views(x, gen, o.crop_scale)
                    z1, z2 = head(backbone(v1)), head(backbone(v2))
                    loss = nt_xent(z1, z2, o.temperature)
                    if not torch.isfinite(loss):
                        raise DeepcoreError(
                            "the simclr encoder's loss is not finite: lower its lr "
                            f"(encoder option lr, now {o.lr})"
                        )
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    sched.step()
                    seen += len(x)
                    loss_sum += float(loss.detach()) * len(x)
                    bar.update(1, None, len(x))
                bar.update(0, note=f"epoch {epoch + 1} loss {loss_sum / max(seen, 1):.3f}")
                state = {"backbone": backbone.state_dict(), "head": head.state_dict(),
                         "opt": opt.state_dict(), "sched": sched.state_dict(),
                         "gen": gen.get_state(), "epoch": epoch + 1}  # fmt: skip
                spent = StageCost(time.perf_counter() - t0, time.process_time() - c0)
                state["cost"] = earlier.plus(spent).as_dict()
                with atomic_write(partial) as fh:
                    save_torch(state, fh, partial)
        backbone.eval()
        return earlier

    def _sanity(self, backbone: _Backbone, data: Any, dev: torch.device) -> float | None:
        """k-NN test accuracy where both splits have labels (report only)."""
        train_y, test_y = labels_or_none(data.train), labels_or_none(data.test)
        if train_y is None or test_y is None or len(data.test) == 0:
            return None

        def embed(source: Any) -> np.ndarray:
            out = []
            with torch.inference_mode():
                for x, _, _ in source.batches(torch.arange(len(source)), 512, device=dev):
                    out.append(backbone(x).float().cpu().numpy())
            return np.concatenate(out)

        backbone.eval()
        acc = knn_accuracy(embed(data.train), train_y, embed(data.test), test_y, self.options.knn)
        return round(100.0 * acc, 2)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
