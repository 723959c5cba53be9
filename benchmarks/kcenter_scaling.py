"""k-center greedy: our O(N)-memory traversal versus a straightforward one with a b x N matrix.

Part 1 compares both at a size where the straightforward one fits (default N=20,000 x 512,
10%): times, their ratio, and whether the selections agree (same first centre).
Part 2 runs ours on N=200,000 x 512 random features at 10%; part 3 on N=1,000,000 x 128
(fraction settable). Each part runs in a fresh subprocess so its peak memory (max RSS) is
its own. Prints one line per measurement; ``--json FILE`` also writes them.

Usage: python benchmarks/kcenter_scaling.py [--parts 1,2,3] [--big-fraction 0.1]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from _child import report, run_child


def straightforward(x: torch.Tensor, k: int, first: int) -> np.ndarray:
    """The original DeepCore shape: every distance row kept in a (k-1) x N matrix, and the
    unselected rows copied out by a boolean mask at every step."""
    n = x.shape[0]
    selected = torch.zeros(n, dtype=torch.bool)
    selected[first] = True
    dis = torch.full((k - 1, n), -1.0)

    def dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        aa = (a * a).sum(1, keepdim=True)
        bb = (b * b).sum(1)[None]
        return (aa + bb - 2 * a @ b.T).clamp(min=1e-12).sqrt()

    dis[0, ~selected] = dist(x[first][None], x[~selected])[0]
    mins = dis[0].clone()
    picks = [first]
    for i in range(1, k):
        p = int(torch.argmax(mins))
        picks.append(p)
        selected[p] = True
        if i == k - 1:
            break
        dis[i, ~selected] = dist(x[p][None], x[~selected])[0]
        mins = torch.min(mins, dis[i])
        mins[selected] = -1
    return np.array(picks)


def ours(x: torch.Tensor, k: int, first: int) -> np.ndarray:
    from deepcore_geometry.greedy import euclidean_distance_fn, farthest_first

    return farthest_first(x.shape[0], k, euclidean_distance_fn(x), first)


def child(which: str, n: int, d: int, fraction: float) -> None:
    torch.manual_seed(0)
    x = torch.randn(n, d)
    k = max(1, round(fraction * n))
    t0 = time.perf_counter()
    picks = (straightforward if which == "straightforward" else ours)(x, k, 0)
    seconds = time.perf_counter() - t0
    report(
        impl=which,
        n=n,
        d=d,
        k=k,
        seconds=seconds,
        checksum=int(picks[:50].sum()),
        picks_head=picks[:10].tolist(),
    )


def run(which: str, n: int, d: int, fraction: float) -> dict:
    return run_child(__file__, "--child", which, str(n), str(d), str(fraction))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child", nargs=4)
    ap.add_argument("--parts", default="1,2,3")
    ap.add_argument("--small-n", type=int, default=20000)
    ap.add_argument("--big-fraction", type=float, default=0.1)
    ap.add_argument("--json")
    args = ap.parse_args()
    if args.child:
        which, n, d, f = args.child
        child(which, int(n), int(d), float(f))
        return
    parts = set(args.parts.split(","))
    results = []
    print(f"{torch.get_num_threads()} threads, float32, random normal features")
    if "1" in parts:
        a = run("straightforward", args.small_n, 512, 0.1)
        b = run("ours", args.small_n, 512, 0.1)
        results += [a, b]
        print(
            f"N={args.small_n} x 512, 10% ({a['k']} picks): straightforward {a['seconds']:.1f} s "
            f"peak {a['peak_rss_gb']:.2f} GB | ours {b['seconds']:.1f} s peak "
            f"{b['peak_rss_gb']:.2f} GB | ratio {a['seconds'] / b['seconds']:.1f}x | same picks: "
            f"{a['picks_head'] == b['picks_head'] and a['checksum'] == b['checksum']}"
        )
    if "2" in parts:
        c = run("ours", 200_000, 512, 0.1)
        results.append(c)
        print(
            f"N=200,000 x 512, 10% ({c['k']} picks): ours {c['seconds']:.1f} s, peak "
            f"{c['peak_rss_gb']:.2f} GB (a (k-1) x N float32 matrix alone would be "
            f"{(c['k'] - 1) * 200_000 * 4 / 2**30:.0f} GB)"
        )
    if "3" in parts:
        e = run("ours", 1_000_000, 128, args.big_fraction)
        results.append(e)
        print(
            f"N=1,000,000 x 128, {args.big_fraction:g} ({e['k']} picks): ours "
            f"{e['seconds']:.1f} s, peak {e['peak_rss_gb']:.2f} GB"
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
