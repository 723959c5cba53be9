"""The embedding engine: penultimate features, logits and probabilities of the training set."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepcore_core import distributed
from deepcore_core.cache import CacheEntry
from deepcore_core.data.sources import Source
from deepcore_core.nets.base import Network
from deepcore_core.progress import Progress


@dataclasses.dataclass
class Embedding:
    """Model outputs for every training sample, in dataset order (float32)."""

    features: np.ndarray  # N x D
    logits: np.ndarray  # N x C

    @property
    def probs(self) -> np.ndarray:
        """Softmax of the logits."""
        from deepcore_core.gradients import softmax

        return softmax(self.logits)


def default_batch_size(device: torch.device, model: Network | None = None) -> int:
    """The embedding pass's batch where the data set none: 512 on a GPU; on a CPU the
    network's ``cpu_batch`` (128 unless it says otherwise: a batch's activations then stay
    in the caches; LeNet's 512). ``benchmarks/memory_and_batch.py`` measures both, and the
    outputs equal other batches' bit for bit for the networks checked there and in
    tests/test_engine.py; very small batches (7) may take BLAS kernels that round otherwise."""
    if device.type != "cpu":
        return 512
    return int(getattr(model, "cpu_batch", 128))


#: outputs kept on an accelerator before one copy to the host (a copy per batch waits on the
#: GPU each time: ``benchmarks/embedding_pass.py --device cuda``)
DEVICE_OUTPUT_BYTES = 256 * 2**20


def _host_outputs(device: torch.device) -> bool:
    """Whether outputs already live in host memory (then each batch's are taken as they are)."""
    return device.type == "cpu"


def compute_embedding(
    model: Network, source: Source, device: torch.device, batch_size: int | None = None
) -> Embedding:
    """One pass in eval mode, no augmentation, no gradients; under torchrun each rank embeds
    its share of the samples and every rank gets them all (``batch_size``: None for
    :func:`default_batch_size` of ``model``)."""
    device = torch.device(device)
    batch_size = batch_size or default_batch_size(device, model)
    model.eval().to(device)
    feats: list[torch.Tensor] = []
    logits: list[torch.Tensor] = []
    pending: list[tuple[torch.Tensor, torch.Tensor]] = []  # outputs still on the device
    held = 0

    def flush() -> None:
        # one copy to the host for many batches: a copy per batch waits for the GPU each time
        if pending:
            hs, outs = zip(*pending, strict=True)
            feats.append((hs[0] if len(hs) == 1 else torch.cat(hs)).cpu())
            logits.append((outs[0] if len(outs) == 1 else torch.cat(outs)).cpu())
            pending.clear()

    n = len(source)
    order = torch.arange(n)[distributed.shard(n)]
    with torch.inference_mode(), Progress(len(order), "embedding", unit="samples") as bar:
        for x, _, _ in source.batches(order, batch_size, device=device):
            out, h = model.forward_with_features(x)
            bar.update(len(x), counted=len(x))
            pending.append((h.float(), out.float()))
            held += (h.numel() + out.numel()) * 4
            if _host_outputs(device) or held >= DEVICE_OUTPUT_BYTES:
                flush()
                held = 0
        flush()
    if not feats:  # a rank with no share (fewer samples than ranks)
        with torch.inference_mode():
            x = next(source.batches(torch.arange(1), 1, device=device))[0]
            out, h = model.forward_with_features(x)
        feats, logits = [h[:0].float().cpu()], [out[:0].float().cpu()]
    features = distributed.gather_rows(torch.cat(feats).numpy(), n)
    return Embedding(features, distributed.gather_rows(torch.cat(logits).numpy(), n))


def cached_embedding(
    model: Network, source: Source, device: torch.device, folder: Path | None
) -> Embedding:
    """The embedding of ``source``, cached as ``embedding.npz`` in the model's cache folder.

    The cached file is checked against its recorded checksum; a missing, truncated or
    replaced one is recomputed (with a warning naming the entry).
    """
    entry = CacheEntry(folder, folder.name) if folder is not None else None
    cached = None  # under torchrun rank 0 reads the cache and every rank takes its copy
    if (
        distributed.is_main()
        and entry is not None
        and entry.usable("embedding.npz", what="embedding cache entry")
    ):
        with np.load(entry.folder / "embedding.npz") as z:
            cached = Embedding(z["features"], z["logits"])
    cached = distributed.share(cached)
    if cached is not None:
        return cached
    # a user source brings its own batch size (DataOptions.batch_size)
    emb = compute_embedding(model, source, device, getattr(source, "batch_size", None))
    if entry is not None and distributed.is_main():
        shapes = {k: [list(v.shape), str(v.dtype)] for k, v in vars(emb).items()}
        entry.write(
            "embedding.npz",
            lambda fh: np.savez(fh, features=emb.features, logits=emb.logits),
            arrays=shapes,
        )
    return emb


def embed_dataset(ctx: Any) -> Embedding:
    """The core's ``embed`` hook: the selection model's embedding of the training set."""
    return cached_embedding(
        ctx.model, ctx.dataset.train, torch.device(ctx.device), ctx.cache_folder
    )
