"""A tokenized Hugging Face text dataset and a small text classifier -> a Craig coreset ->
training on it with the text's own collate function, then the kept rows as a dataset.

Runs on the CPU in a few seconds: ``python examples/python-api/text_classifier.py`` (needs
deepcore-core, deepcore-gradient-matching and ``datasets``; nothing is downloaded).

The "reviews" are token ids of two vocabularies (positive words and negative words, mixed
with shared filler), of different lengths, as a tokenizer would give them. Rows are
mappings (``input_ids``, ``label``), batched by the padding collate function the model's own
DataLoader uses; deepcore hands it the rows exactly as they are.
"""

from __future__ import annotations

import numpy as np
import torch
from datasets import ClassLabel, Dataset, Features, Sequence, Value
from torch import nn

import deepcore_core as dc

VOCAB = 60  # 0: padding; 1-19 filler; 20-39 positive; 40-59 negative


def reviews(n: int, seed: int) -> Dataset:
    """``n`` tokenized reviews with a ``ClassLabel`` (negative, positive)."""
    rng = np.random.default_rng(seed)
    ids, labels = [], []
    for _ in range(n):
        label = int(rng.integers(0, 2))
        length = int(rng.integers(5, 20))
        words = rng.integers(1, 20, length)  # filler
        telling = rng.random(length) < 0.3
        words[telling] = rng.integers(40 - 20 * label, 60 - 20 * label, telling.sum())
        ids.append(words.tolist())
        labels.append(label)
    features = Features(
        {"input_ids": Sequence(Value("int64")), "label": ClassLabel(names=["negative", "positive"])}
    )
    return Dataset.from_dict({"input_ids": ids, "label": labels}, features=features)


def pad(rows: list[dict]) -> dict[str, torch.Tensor]:
    """The collate function of the model's own DataLoader: pads token ids with 0."""
    width = max(len(r["input_ids"]) for r in rows)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r["input_ids"])] = torch.as_tensor(r["input_ids"])
    return {"input_ids": ids, "label": torch.as_tensor([r["label"] for r in rows])}


class BagOfWords(nn.Module):
    """Mean token embedding -> a linear classifier (its input: the penultimate features)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.EmbeddingBag(VOCAB, 16, padding_idx=0)
        self.classify = nn.Linear(16, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.classify(self.embed(ids))


def main() -> None:
    train, test = reviews(1000, seed=0), reviews(300, seed=1)
    torch.manual_seed(0)
    selector = BagOfWords()  # a briefly trained model scores the pool
    dc.train(selector, train, epochs=2, lr=0.5, batch_size=32, collate_fn=pad, device="cpu")
    sel = dc.select("craig", dataset=train, model=selector, fraction=0.1, collate_fn=pad,
                    device="cpu")  # fmt: skip
    print(f"craig: {len(sel)} of {len(train)} reviews, classes {sel.meta['classes']}")
    torch.manual_seed(0)
    net = BagOfWords()
    result = dc.train(net, train, sel, epochs=30, lr=0.5, batch_size=16, collate_fn=pad,
                      test=test, device="cpu")  # fmt: skip
    print(f"coreset model: test accuracy {result.final_accuracy:.3f}")
    kept = sel.to_hf(train)
    print(f"kept rows: {len(kept)}, columns {kept.column_names}")


if __name__ == "__main__":
    main()
