"""Your own Dataset and model -> graph-cut and Craig coresets -> training with a DataLoader.

Runs on the CPU in about 15 seconds: ``python examples/python-api/own_data_and_model.py``
(needs deepcore-core, deepcore-submodular and deepcore-gradient-matching installed).

The dataset is not in deepcore's catalog (noisy stripes drawn as PIL images, turned into
tensors by a torchvision transform) and the model has layer names deepcore never saw; its
penultimate features are the input of its last nn.Linear, found automatically.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

import deepcore_core as dc


class Stripes(Dataset):
    """16 x 16 grey images: class c is a stripe at height 4c, plus noise."""

    def __init__(self, n: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.targets = rng.integers(0, 4, n).tolist()
        self.images = []
        for c in self.targets:
            img = rng.normal(100, 70, (16, 16))
            img[4 * c : 4 * c + 3] += 40
            self.images.append(Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)))
        self.transform = transforms.ToTensor()

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int):
        return self.transform(self.images[i]), self.targets[i]


class StripeNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.extract = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4)
        )
        self.squash = nn.Sequential(nn.Flatten(), nn.Linear(128, 32), nn.ReLU())
        self.verdict = nn.Linear(32, 4)  # found as the final linear layer

    def forward(self, x):
        return self.verdict(self.squash(self.extract(x)))


def fit(model: nn.Module, loader: DataLoader, epochs: int, weighted: bool) -> nn.Module:
    """A plain training loop; with weights, the loss is sum(w * l) / sum(w) per batch."""
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for _ in range(epochs):
        for batch in loader:
            x, y, w = batch if weighted else (*batch, torch.ones(len(batch[1])))
            loss = nn.functional.cross_entropy(model(x), y, reduction="none")
            loss = (w * loss).sum() / w.sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model


def accuracy(model: nn.Module, data: Dataset) -> float:
    x, y = next(iter(DataLoader(data, batch_size=len(data))))
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def main() -> None:
    torch.manual_seed(0)
    train, test = Stripes(2000, seed=0), Stripes(500, seed=1)
    selector = fit(StripeNet(), DataLoader(train, batch_size=64, shuffle=True), 2, False)

    for method in ("graph-cut", "craig"):
        sel = dc.select(method, dataset=train, model=selector, fraction=0.05, device="cpu")
        weighted = sel.weights is not None
        data = sel.weighted(train) if weighted else sel.subset(train)
        torch.manual_seed(0)
        net = fit(StripeNet(), DataLoader(data, batch_size=16, shuffle=True), 30, weighted)
        print(
            f"{method}: {len(sel)} of {len(train)} samples, weighted={weighted}, "
            f"test accuracy {accuracy(net, test):.3f}"
        )
    # the engine's own training loop does the same from one call
    sel = dc.select("craig", dataset=train, model=selector, fraction=0.05, device="cpu")
    result = dc.train(
        StripeNet(), train, sel, epochs=30, lr=0.05, batch_size=16, device="cpu", test=test
    )
    print(f"craig through dc.train: test accuracy {result.final_accuracy:.3f}")


if __name__ == "__main__":
    main()
