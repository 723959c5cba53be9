"""Selection speed per method from a cached selection model, before and after a change.

Fashion-MNIST, a LeNet selection model trained one epoch (cached once, shared by every
measurement), fraction 0.1, balanced, seed 0. Each measurement runs in a fresh interpreter
and times ``run_selection`` (cached model loaded, embedding pass, scores, picks) with the data
already in memory, as ``deepcore select --dataset`` does it. Columns:

- ``embed+select``: the embedding pass included (the cached embedding is deleted first),
  as the original DeepCore's ``select()`` always recomputes it;
- ``select``: the same selection from the cached embedding (the method's own arithmetic);
- the split of ``embed+select`` into the train (cache load), embed, score and select stages.

With ``--baseline REF`` every measurement also runs against the core and plugins of git
revision REF (a temporary worktree put first on ``PYTHONPATH``), the two interleaved, and the
ratio baseline/now is printed; ``--original`` prints the ratio against the original DeepCore
code's times measured on this machine (the table of the performance issue, both passes).

``--original-code DIR`` runs the original itself, side by side: DIR is a checkout of the
original DeepCore (github.com/PatrickZH/DeepCore), and for every method it has, its
``select()`` runs in a fresh interpreter after deepcore's children of each round, on the
same cached selection model and data (``benchmarks/_original.py`` says how). The ratio
original/now and the share of picks in common are printed, and no host scaling is needed.
``--variant original`` runs deepcore's methods with the original code's rules
(``docs/methods.md``, *The original code's rules*), so that the picks in common measure how
closely the same rules agree rather than where deepcore's rules differ.

The machine's guests do not all run at one speed: a plain LeNet's forward pass differs by 2x
between sessions. ``--original`` therefore also times a host probe, the issue's own yardstick
(a LeNet of torch's stock modules, forward over 60,000 random 1 x 28 x 28 tensors, batch 512,
two threads, in a fresh interpreter; 1.6 s when the original's times were taken), before and
after the methods, and prints a second set of ratios with the original's times scaled by
probe / 1.6: an estimate of what the original would take on the host of this run (its time,
too, is mostly forward passes and memory-bound arithmetic).

The plugins of ``examples/`` that a development install carries (distributions named
``deepcore-example-*``) are disabled in the children: the TensorBoard observer alone imports
TensorBoard and writes event files on every selection (0.11 s), which is not the selection.

Usage: python benchmarks/selection_speed.py --data-root DIR [--baseline REF] [--methods a,b]
       [--rounds 2] [--threads 1] [--original] [--original-code DIR [--original-workers 2]]
       [--variant default|original]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _original import MARKER as ORIGINAL_MARKER
from _original import RUNS as ORIGINAL_RUNS
from _original import pre_fix_files
from _trees import ROOT, compared_trees, pythonpath

#: the methods timed by default, with the options the comparison uses (GraNd: one model);
#: ``name:label`` times ``name`` with the given options under its own label
METHODS = {
    "uniform": {},
    "least-confidence": {},
    "entropy": {},
    "margin": {},
    "contextual-diversity": {},
    "kcenter": {},
    "herding": {},
    "forgetting": {},
    "grand": {"repeats": 1},
    "el2n": {"repeats": 1},
    "graph-cut": {},
    "facility-location": {},
    "log-determinant": {},
    "craig": {},
    "gradmatch": {},
    "glister": {},
    "glister:update=false": {"update": False},
    "cal": {},
    "deepfool": {},
}

#: methods that never use the embedding: timed once
WITHOUT_EMBEDDING = {"uniform", "forgetting", "deepfool"}

#: the original DeepCore code's select() minus its training epoch on this machine, in seconds
#: (two passes where measured twice; DeepFool's run was stopped after 870 s)
ORIGINAL = {
    "margin": (38.4, 12.9),
    "kcenter": (18.3, 27.7),
    "herding": (35.7, 17.3),
    "grand": (24.6, 13.9),
    "graph-cut": (206.0, 73.5),
    "facility-location": (150.5, 124.6),
    "craig": (59.5, 92.8),
    "gradmatch": (138.6,),
    "glister:update=false": (9.3, 13.5),  # the original never updates its state
    "cal": (41.9, 42.8),
    "deepfool": (870.0,),
}


#: the host probe's seconds when the original's times were taken (the performance issue)
PROBE_REFERENCE = 1.6


def probe() -> None:
    """In a fresh interpreter at two threads: a stock LeNet's forward pass over 60,000
    random 1 x 28 x 28 tensors at batch 512 (the median of three); prints the seconds."""
    import torch
    from torch import nn

    torch.set_num_threads(2)
    torch.manual_seed(0)
    net = nn.Sequential(
        *(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2)),
        *(nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten()),
        *(nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10)),
    ).eval()
    x = torch.randn(60000, 1, 28, 28)
    times = []
    with torch.no_grad():
        for _ in range(3):
            t0 = time.perf_counter()
            for lo in range(0, len(x), 512):
                net(x[lo : lo + 512])
            times.append(time.perf_counter() - t0)
    print(json.dumps({"seconds": statistics.median(times)}))


def host_probe() -> float:
    """The probe's seconds, from a fresh interpreter."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--probe"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return float(json.loads(out.stdout.strip().splitlines()[-1])["seconds"])


def child(args: argparse.Namespace) -> None:
    """In a fresh interpreter: one selection, timed by stage; prints one JSON line."""
    from deepcore_core.engine import devices

    # torch's and the BLAS pools' threads and the allocator, as the CLI sets them (a
    # baseline before the allocator setting has only the threads, as ``use_threads``)
    setup = getattr(devices, "setup_cpu", None) or getattr(devices, "use_threads")  # noqa: B009
    setup(args.threads)
    from deepcore_core.cli.select import dataset_context
    from deepcore_core.plugins import get_host
    from deepcore_core.settings import SelectSettings
    from deepcore_core.workflow import run_selection

    host = get_host()
    s = SelectSettings(
        method=args.method,
        dataset="fashion-mnist",
        data_root=args.data_root,
        fraction=args.fraction,
        selection_epochs=1,
        device=args.device,
        cache_dir=args.cache_dir,
    )
    ctx = dataset_context(host, s)
    stages: dict[str, float] = {}
    started: dict[str, float] = {}

    def before(name: str, impls: object, kwargs: object) -> None:
        started[name] = time.perf_counter()

    def after(outcome: object, name: str, impls: object, kwargs: object) -> None:
        stages[name] = stages.get(name, 0.0) + time.perf_counter() - started.pop(name)

    host.pm.add_hookcall_monitoring(before, after)
    selector = host.create_selector(args.method, json.loads(args.options), args.variant)
    t0 = time.perf_counter()
    sel = run_selection(host, selector, ctx, fraction=args.fraction, dataset_name="x")
    total = time.perf_counter() - t0
    picks = sorted(int(i) for i in sel.indices)
    stages = {
        k: round(v, 4) for k, v in stages.items() if k in ("train", "embed", "score", "select")
    }
    print(json.dumps({"seconds": total, "stages": stages, "picks": picks}))


def example_plugins() -> list[str]:
    """Entry-point names of the installed ``deepcore-example-*`` plugins."""
    from importlib.metadata import entry_points

    return sorted(
        ep.name
        for ep in entry_points(group="deepcore")
        if ep.dist is not None and ep.dist.name.startswith("deepcore-example-")
    )


def measure(
    tree: Path, method: str, args: argparse.Namespace, embed: bool, options: dict | None = None
) -> dict:
    """One child run on ``tree``; ``embed`` deletes the cached embedding first; ``options``
    replace the method's options of :data:`METHODS`."""
    if embed:
        for f in Path(args.cache_dir).rglob("embedding.npz"):
            f.unlink()
    disabled = [x for x in os.environ.get("DEEPCORE_DISABLE_PLUGINS", "").split(",") if x]
    env = {
        **os.environ,
        "PYTHONPATH": pythonpath(tree),
        "DEEPCORE_PROGRESS": "0",
        "DEEPCORE_DISABLE_PLUGINS": ",".join(disabled + example_plugins()),
    }
    cmd = [
        sys.executable,
        str(ROOT / "benchmarks" / "selection_speed.py"),
        "--child",
        "--method",
        method.split(":")[0],
        "--options",
        json.dumps(METHODS.get(method, {}) if options is None else options),
        "--data-root",
        args.data_root,
        "--cache-dir",
        args.cache_dir,
        "--threads",
        str(args.threads),
        "--fraction",
        str(args.fraction),
        "--device",
        args.device,
        "--variant",
        args.variant,
    ]
    out = subprocess.run(
        cmd, env=env, cwd=tempfile.gettempdir(), capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise SystemExit(f"{method} on {tree} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def cached_model(cache_dir: str) -> Path:
    """The one cached selection model's weights in ``cache_dir``."""
    found = sorted(Path(cache_dir).glob("selection-models/*/model.pt"))
    if len(found) != 1:
        raise SystemExit(f"expected one cached selection model in {cache_dir}, found {len(found)}")
    return found[0]


def measure_original(method: str, args: argparse.Namespace) -> dict:
    """One run of the original code's ``select()`` for ``method`` in a fresh interpreter."""
    threads = str(args.threads)
    env = {**os.environ, "OMP_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads}
    cmd = [
        sys.executable,
        str(ROOT / "benchmarks" / "_original.py"),
        *("--code", args.original_code, "--method", method),
        *("--model", str(cached_model(args.cache_dir)), "--data-root", args.data_root),
        *("--work", str(Path(args.cache_dir) / "original-data"), "--threads", threads),
        *("--workers", str(args.original_workers), "--fraction", str(args.fraction)),
        *("--device", args.device),
    ]
    out = subprocess.run(
        cmd, env=env, cwd=tempfile.gettempdir(), capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise SystemExit(f"the original's {method} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    """Time every method and print one line per method (and the geometric means)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--baseline", help="git revision to compare against")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--fraction", type=float, default=0.1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--original", action="store_true", help="ratios against the original code")
    ap.add_argument("--original-code", help="checkout of the original DeepCore, run side by side")
    ap.add_argument("--original-workers", type=int, default=2, help="the original's loader workers")
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument(
        "--variant",
        choices=("default", "original"),
        default="default",
        help="deepcore's rules, or the original code's (picks then comparable with it)",
    )
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--method", help=argparse.SUPPRESS)
    ap.add_argument("--options", default="{}", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    if args.probe:
        probe()
        return
    if args.original_code and not (Path(args.original_code) / ORIGINAL_MARKER).is_file():
        ap.error(f"--original-code {args.original_code}: no {ORIGINAL_MARKER} there")
    own_cache = args.cache_dir is None
    args.cache_dir = args.cache_dir or tempfile.mkdtemp(prefix="deepcore-speed-cache-")
    methods = [m for m in args.methods.split(",") if m]
    print(
        f"{args.threads} thread(s), fraction {args.fraction}, device {args.device}, "
        f"variant {args.variant}",
        flush=True,
    )
    stale = pre_fix_files(Path(args.original_code)) if args.original_code else []
    if stale:
        print(
            f"warning: {', '.join(stale)} in {args.original_code} predate the original's fix "
            "ca3fb21 (a softmax before the cross-entropy): their picks are not comparable",
            flush=True,
        )
    try:
        with compared_trees(args.baseline) as trees:
            compare(trees, methods, args)
    finally:
        if own_cache:
            shutil.rmtree(args.cache_dir, ignore_errors=True)


def compare(trees: dict[str, Path], methods: list[str], args: argparse.Namespace) -> None:
    """Time every method on every tree, one printed line per method, then the means."""
    measure(ROOT, "margin", args, embed=False)  # trains and caches the selection model
    probes = [host_probe()] if args.original else []
    ratios: dict[str, list[float]] = {"baseline": [], "original": [], "original run here": []}
    now: dict[str, float] = {}
    lowest_here = math.inf
    for m in methods:
        res: dict[str, dict[bool, list]] = {}
        original: list[dict] = []
        for _ in range(args.rounds):
            for k, tree in trees.items():
                for embed in (True, False) if m not in WITHOUT_EMBEDDING else (True,):
                    res.setdefault(k, {}).setdefault(embed, []).append(
                        measure(tree, m, args, embed)
                    )
            if args.original_code and m in ORIGINAL_RUNS:
                original.append(measure_original(m, args))
        line = f"{m:21s}"
        med = {}
        for k in trees:
            full = res[k][True]
            med[k] = statistics.median(r["seconds"] for r in full)
            sel = statistics.median(r["seconds"] for r in res[k].get(False, full))
            st = full[len(full) // 2]["stages"]
            parts = " ".join(f"{s}={v:.2f}" for s, v in st.items())
            line += f" | {k} embed+select {med[k]:7.2f} s, select {sel:7.2f} s ({parts})"
        if "baseline" in med:
            before, after = res["baseline"][True][0]["picks"], res["now"][True][0]["picks"]
            shared = len(set(before) & set(after)) / max(1, len(after))
            ratios["baseline"].append(med["baseline"] / med["now"])
            line += f" | ratio {ratios['baseline'][-1]:.2f}x, picks shared {100 * shared:.2f}%"
        if original:
            r = [o["seconds"] / med["now"] for o in original]
            shared = len(set(original[0]["picks"]) & set(res["now"][True][0]["picks"]))
            ratios["original run here"].append(geomean(r))
            lowest_here = min(lowest_here, *r)
            line += (
                f" | original run here {statistics.median(o['seconds'] for o in original):.2f} s: "
                + "; ".join(f"{x:.1f}x" for x in r)
                + f", picks shared {100 * shared / max(1, len(original[0]['picks'])):.2f}%"
            )
        if args.original and m in ORIGINAL:
            now[m] = med["now"]
            r = [o / med["now"] for o in ORIGINAL[m]]
            ratios["original"].append(geomean(r))
            line += " | vs original " + "; ".join(f"{x:.1f}x" for x in r)
        print(line, flush=True)
    for k, v in ratios.items():
        if v:
            print(f"geometric mean vs {k}: {geomean(v):.2f}x (min {min(v):.2f}x) over {len(v)}")
    if ratios["original run here"]:
        print(f"lowest single pass vs the original run here: {lowest_here:.2f}x")
    if probes:
        probes.append(host_probe())
        scale = statistics.mean(probes) / PROBE_REFERENCE
        print(
            f"host probe {', '.join(f'{p:.2f}' for p in probes)} s (reference "
            f"{PROBE_REFERENCE} s): the original's times scaled by {scale:.2f}"
        )
        scaled = {m: [o * scale / t for o in ORIGINAL[m]] for m, t in now.items()}
        for m, r in scaled.items():
            print(f"{m:21s} | vs original on this host " + "; ".join(f"{x:.1f}x" for x in r))
        per_method = [geomean(r) for r in scaled.values()]
        lowest = min(x for r in scaled.values() for x in r)
        print(
            f"geometric mean vs original on this host: {geomean(per_method):.2f}x "
            f"(lowest single pass {lowest:.2f}x) over {len(per_method)}"
        )


def geomean(values: list[float]) -> float:
    """The geometric mean."""
    return math.exp(statistics.mean(math.log(x) for x in values))


if __name__ == "__main__":
    main()
