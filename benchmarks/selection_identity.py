"""Fingerprints of every method's selection through every front end, to prove a refactor
changed no selection bit for bit.

Each case is one selection made through one front end: the command line (``deepcore select``,
run in this process), the Python API on a user's dataset (engine-trained and given model)
and on precomputed arrays, and the experiment runner. A case's fingerprint is the SHA-256 of
its indices, weights and scores as stored. Write the fingerprints of one code version, then
check another against them::

    python benchmarks/selection_identity.py --write before.json
    python benchmarks/selection_identity.py --check before.json   # exit 1 on any difference

The calls use only what every version since 0.1 accepts (the API's ``network=`` among
them, since renamed ``selection_network=``), so one script fingerprints both sides.
``--datasets digits,fashion-mnist`` picks the datasets (Fashion-MNIST reads
``--fmnist-root``); ``--methods`` narrows the methods. Runs on one CPU thread, so the result
does not depend on the machine's core count.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

FMNIST_ROOT = "/usr/share/datasets/fashion-mnist"


def fingerprint(indices: Any, weights: Any, scores: Any) -> str:
    h = hashlib.sha256()
    for part in (indices, weights, scores):
        h.update(b"-" if part is None else np.ascontiguousarray(part).tobytes())
    return h.hexdigest()[:16]


def of_file(path: Path) -> str:
    with np.load(path) as z:
        get = lambda k: z[k] if k in z.files else None  # noqa: E731
        return fingerprint(get("indices"), get("weights"), get("scores"))


def cli_cases(methods: list[str], dataset: str, root: str | None, tmp: Path) -> dict[str, Any]:
    """``deepcore select`` on a built-in dataset: balanced, unbalanced, original rules."""
    from deepcore_core.cli import create_app

    app = create_app()
    cache = tmp / f"cache-{dataset}"
    base = ["select", "--dataset", dataset, "--threads", "1", "--device", "cpu"]
    base += ["--cache-dir", str(cache)] + (["--data-root", root] if root else [])
    shapes = {"f0.1": ["--fraction", "0.1"]}
    if dataset == "digits":  # cheap: more of the settings' axes
        shapes["b90-unbalanced"] = ["--budget", "90", "--no-balance"]
        shapes["f0.1-original"] = ["--fraction", "0.1", "--variant", "original"]
        shapes["f0.2-stratified"] = ["--fraction", "0.2", "--sampler", "stratified"]
    out: dict[str, Any] = {}
    for method in methods:
        for shape, args in shapes.items():
            path = tmp / "sel.npz"
            argv = [*base, "--method", method, "--output", str(path), *args]
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    app(["-q", *argv], standalone_mode=False)
                out[f"cli/{dataset}/{method}/{shape}"] = of_file(path)
            except SystemExit as exc:  # usage errors (a method that refuses a setting)
                out[f"cli/{dataset}/{method}/{shape}"] = f"exit {exc.code}"
    return out


def api_cases(methods: list[str], tmp: Path) -> dict[str, Any]:
    """``dc.select`` on a user's dataset (engine-trained model and given model) and arrays."""
    import deepcore_core as dc
    from deepcore_core import Need, PluginHost
    from deepcore_core.testing import ImageBlobs, OddNet

    host = PluginHost()
    ds = ImageBlobs(n=300)
    emb = dc.embed(ds, OddNet(), device="cpu")
    labels = np.array([ds[i][1] for i in range(len(ds))])
    out: dict[str, Any] = {}
    for method in methods:
        needs = set(host.method(method).cls.needs)
        trained = {"network": "mlp", "selection_epochs": 3, "cache_dir": str(tmp / "api-cache")}
        cases: dict[str, Callable[[], Any]] = {
            "trained": lambda m=method, t=trained: dc.select(
                m, dataset=ds, fraction=0.1, device="cpu", host=host, **t
            ),
        }
        if Need.DYNAMICS not in needs:
            cases["model"] = lambda m=method: dc.select(
                m, dataset=ds, model=OddNet(), fraction=0.1, device="cpu", host=host
            )
        if not needs & {Need.DYNAMICS, Need.MODEL}:
            cases["arrays"] = lambda m=method: dc.select(
                m, features=emb.features, labels=labels, logits=emb.logits, fraction=0.1,
                device="cpu", host=host,
            )  # fmt: skip
        for name, call in cases.items():
            sel = call()
            out[f"api/blobs/{method}/{name}"] = fingerprint(sel.indices, sel.weights, sel.scores)
    return out


def runner_cases(methods: list[str], tmp: Path) -> dict[str, Any]:
    """The experiment runner's selections (one selection model shared by every method)."""
    from deepcore_core.experiment import Experiment, make_config
    from deepcore_core.plugins import PluginHost

    config = make_config(
        {"dataset": "digits", "methods": methods, "fractions": [0.1], "seeds": [0],
         "output": str(tmp / "run"), "cache_dir": str(tmp / "run-cache"), "threads": 1,
         "device": "cpu"}
    )  # fmt: skip
    exp = Experiment(config, PluginHost(), log=lambda m: None)
    out: dict[str, Any] = {}
    for method in methods:
        sel, _ = exp.select(method, 0.1, 0)
        out[f"runner/digits/{method}/f0.1"] = fingerprint(sel.indices, sel.weights, sel.scores)
    return out


def collect(args: argparse.Namespace) -> dict[str, Any]:
    import os

    os.environ["DEEPCORE_PROGRESS"] = "0"
    from deepcore_core.engine import devices
    from deepcore_core.plugins import PluginHost

    # setup_cpu was called use_threads before 655ba5a (2026-11-29)
    (getattr(devices, "setup_cpu", None) or devices.use_threads)(1)
    names = PluginHost().registry.names()
    methods = [m for m in names if not args.methods or m in args.methods.split(",")]
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for dataset in args.datasets.split(","):
            t0 = time.perf_counter()
            root = args.fmnist_root if dataset == "fashion-mnist" else None
            out.update(cli_cases(methods, dataset, root, tmp))
            print(f"cli {dataset}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        t0 = time.perf_counter()
        out.update(api_cases(methods, tmp))
        out.update(runner_cases(methods, tmp))
        print(f"api and runner: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", type=Path, help="write the fingerprints here (JSON)")
    group.add_argument("--check", type=Path, help="compare with fingerprints written before")
    ap.add_argument("--datasets", default="digits,fashion-mnist")
    ap.add_argument("--fmnist-root", default=FMNIST_ROOT)
    ap.add_argument("--methods", default="", help="comma-separated (default: every method)")
    args = ap.parse_args()
    now = collect(args)
    if args.write:
        args.write.write_text(json.dumps(now, indent=1, sort_keys=True) + "\n")
        print(f"{len(now)} selections fingerprinted -> {args.write}")
        return 0
    before = json.loads(args.check.read_text())
    common = sorted(set(before) & set(now))
    differ = [k for k in common if before[k] != now[k]]
    for k in differ:
        print(f"DIFFERENT {k}: {before[k]} -> {now[k]}")
    for k in sorted(set(before) ^ set(now)):
        print(f"only {'before' if k in before else 'now'}: {k}")
    print(f"{len(common) - len(differ)} of {len(common)} selections identical")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
