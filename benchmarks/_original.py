"""Run the original DeepCore code's ``select()`` from a checkout, for side-by-side timing.

``benchmarks/selection_speed.py --original-code DIR`` runs this file in a fresh interpreter
per measurement, alternating with deepcore's own children. DIR is a checkout of the original
code (github.com/PatrickZH/DeepCore, the folder holding its ``deepcore`` package); nothing of
it is part of this repository.

The protocol is the one of the performance issue: Fashion-MNIST through the original's own
dataset function (torchvision's ``FashionMNIST``, ``ToTensor`` and ``Normalize`` per sample),
the original's LeNet carrying deepcore's cached selection model (the same weights, so the
training epoch is left out: ``epochs=0``), ``main.py``'s selection arguments (balanced,
``specific_model=None``, ``torchvision_pretrain=False``, lazy greedy, selection batch 256,
SGD settings), fraction 0.1, seed 0, and only ``select()`` timed. Its data loaders get
``--workers`` processes (``selection_speed.py`` passes 2: on two cores the original's margin
took 14-16 s with 2, 16 s with 4, 18-19 s with none and 21 s with 1). What had to change for
it to run here, and nothing else:

- the packages' ``__init__`` files are skipped (each method's module is imported on its
  own), so that models this protocol never builds need not import on today's torchvision;
- ``numpy.in1d`` (removed in numpy 2.4) is ``numpy.isin``, as numpy's own notes say for
  1-D arrays;
- Cal's neighbours come from the selection LeNet at 28 px, as deepcore's ``cal`` finds them
  by default, not from an ImageNet ResNet-18 at 224 px (its weights cannot be downloaded here).

Use method files as of the original's commit ``ca3fb21`` ("bug fix", January 2023) or later:
before it, GraNd, Glister, the submodular methods, Craig and GradMatch took their gradients
through a softmax before the cross-entropy, and their picks are not comparable
(``pre_fix_files`` names such files; ``selection_speed.py`` warns about them).

On CUDA (``--device cuda``) the original's GradMatch calls ``torch.lstsq``, which torch no
longer has: it fails there, as it would for any user of today's torch.

Prints one JSON line: ``seconds`` and the picked indices.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import importlib
import json
import os
import shutil
import sys
import time
import types
from pathlib import Path

#: deepcore's method name -> the original's module, class and arguments beyond the shared ones
RUNS: dict[str, tuple[str, str, dict]] = {
    "margin": ("uncertainty", "Uncertainty", {"selection_method": "Margin"}),
    "least-confidence": ("uncertainty", "Uncertainty", {"selection_method": "LeastConfidence"}),
    "entropy": ("uncertainty", "Uncertainty", {"selection_method": "Entropy"}),
    "kcenter": ("kcentergreedy", "kCenterGreedy", {}),
    "herding": ("herding", "Herding", {}),
    "grand": ("grand", "GraNd", {"repeat": 1}),
    "graph-cut": ("submodular", "Submodular", {"function": "GraphCut"}),
    "facility-location": ("submodular", "Submodular", {"function": "FacilityLocation"}),
    "craig": ("craig", "Craig", {}),
    "gradmatch": ("gradmatch", "GradMatch", {}),
    "glister:update=false": ("glister", "Glister", {}),  # the original never updates its state
    "cal": ("cal", "Cal", {"pretrain_model": "LeNet"}),
}

#: the selection arguments of the original ``main.py`` (its defaults), epochs 0
SHARED = {
    "epochs": 0,
    "specific_model": None,
    "balance": True,
    "torchvision_pretrain": False,
    "greedy": "LazyGreedy",
    "fraction_pretrain": 1.0,
}

#: a file every checkout of the original code has
MARKER = "deepcore/methods/earlytrain.py"

#: a softmax before the cross-entropy, in the original's gradients before its commit ca3fb21
DOUBLE_SOFTMAX = "softmax(outputs.requires_grad_(True)"


def pre_fix_files(code: Path) -> list[str]:
    """The original's method files in ``code`` that still take the gradient through a softmax
    before the cross-entropy (the files before its commit ``ca3fb21``, January 2023): their
    picks differ from the fixed code's and from deepcore's."""
    methods = code / "deepcore" / "methods"
    return sorted(
        f.name for f in methods.glob("*.py") if DOUBLE_SOFTMAX in f.read_text(errors="replace")
    )


#: the IDX files torchvision's FashionMNIST reads
FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def raw_folder(data_root: Path, work: Path) -> Path:
    """A folder laid out as torchvision expects (``FashionMNIST/raw``), with the IDX files
    of ``data_root`` (gzipped or not) decompressed into it once."""
    raw = work / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        if (raw / name).exists():
            continue
        plain, packed = data_root / name, data_root / f"{name}.gz"
        tmp = raw / f".{name}.partial"
        if plain.exists():
            shutil.copyfile(plain, tmp)
        elif packed.exists():
            with gzip.open(packed) as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst)
        else:
            raise SystemExit(f"no {name}(.gz) in {data_root}")
        os.replace(tmp, raw / name)
    return work


def _package(name: str, folder: Path) -> types.ModuleType:
    """An empty package ``name`` over ``folder``: its submodules import, its ``__init__``
    is never run."""
    mod = types.ModuleType(name)
    mod.__path__ = [str(folder)]
    sys.modules[name] = mod
    return mod


def load_original(code: Path) -> dict[str, types.ModuleType]:
    """The original's ``deepcore`` package from ``code``, package ``__init__`` files skipped."""
    root = code / "deepcore"
    if not (code / MARKER).is_file():
        raise SystemExit(f"{code} is not a checkout of the original DeepCore (no {MARKER})")
    sys.path.insert(0, str(code))
    top = _package("deepcore", root)
    for sub in ("methods", "nets", "datasets"):
        setattr(top, sub, _package(f"deepcore.{sub}", root / sub))
    return {
        "nets": sys.modules["deepcore.nets"],
        "lenet": importlib.import_module("deepcore.nets.lenet"),
        "data": importlib.import_module("deepcore.datasets.fashionmnist"),
    }


def child(args: argparse.Namespace) -> None:
    """In a fresh interpreter: the original's ``select()`` for one method, timed."""
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    if not hasattr(np, "in1d"):
        np.in1d = np.isin  # type: ignore[attr-defined]
    mods = load_original(Path(args.code).resolve())
    module, cls, extra = RUNS[args.method]
    state = torch.load(args.model, map_location="cpu", weights_only=True)

    def selection_lenet(
        channel: int, num_classes: int, pretrained: bool = False, im_size: object = None, **kw: bool
    ) -> torch.nn.Module:
        """The original's LeNet for 28 px with the cached weights (``pretrained`` and
        ``im_size`` are what the original passes; the cached model is for 28 px)."""
        net = mods["lenet"].LeNet(channel, num_classes, (28, 28), **kw)
        own = net.state_dict()
        if [v.shape for v in own.values()] != [v.shape for v in state.values()]:
            raise SystemExit("the cached selection model is not a LeNet for 28 px, 10 classes")
        net.load_state_dict(dict(zip(own, state.values(), strict=True)))
        return net

    mods["nets"].LeNet = selection_lenet
    importlib.import_module("deepcore.nets.nets_utils")
    methods = importlib.import_module(f"deepcore.methods.{module}")
    if module == "cal":  # neighbours from the 28 px LeNet: no resize to 224
        methods.transforms = types.SimpleNamespace(Compose=lambda ts: ts[0], Resize=lambda s: None)

    folder = raw_folder(Path(args.data_root), Path(args.work))
    channel, im_size, num_classes, names, _, _, train, _ = mods["data"].FashionMNIST(str(folder))
    device = "cuda" if args.device == "cuda" else "cpu"
    run_args = argparse.Namespace(
        model="LeNet",
        channel=channel,
        im_size=im_size,
        num_classes=num_classes,
        class_names=names,
        device=device,
        gpu=None,
        workers=args.workers,
        print_freq=20,
        selection_batch=256,
        lr=0.1,
        selection_lr=0.1,
        selection_momentum=0.9,
        selection_weight_decay=5e-4,
        selection_nesterov=True,
        selection_optimizer="SGD",
        selection_test_interval=1,
        selection_test_fraction=1.0,
    )
    method = getattr(methods, cls)(train, run_args, args.fraction, 0, **{**SHARED, **extra})
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):  # progress lines
        t0 = time.perf_counter()
        result = method.select()
        seconds = time.perf_counter() - t0
    picks = sorted(int(i) for i in np.asarray(result["indices"]).ravel())
    print(json.dumps({"seconds": seconds, "picks": picks}))


def main() -> None:
    """Command line of one child run."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--code", required=True, help="checkout of the original DeepCore")
    ap.add_argument("--method", required=True, choices=sorted(RUNS))
    ap.add_argument("--model", required=True, help="deepcore's cached model.pt")
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--work", required=True, help="folder for the decompressed IDX files")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--fraction", type=float, default=0.1)
    ap.add_argument("--device", default="cpu")
    child(ap.parse_args())


if __name__ == "__main__":
    main()
