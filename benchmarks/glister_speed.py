"""Glister selection time for one Fashion-MNIST class (6,000 images, LeNet outputs), 10%.

Prints the time with an update after every pick and with per_step=10.

Usage: python benchmarks/glister_speed.py [--data-root DIR]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _fmnist import fmnist_lenet, one_class

from deepcore_core import select


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-root", default="/usr/share/datasets/fashion-mnist")
    args = ap.parse_args()
    c = one_class(fmnist_lenet(args.data_root))
    logits = np.log(np.clip(c["probs"], 1e-30, None))
    for per_step in (1, 10):
        t0 = time.perf_counter()
        sel = select(
            "glister",
            features=c["features"],
            logits=logits,
            labels=c["labels"],
            fraction=0.1,
            options={"per_step": per_step},
        )
        print(
            f"Glister, one class N={len(c['labels'])}, {len(sel)} picks, per_step={per_step}: "
            f"{time.perf_counter() - t0:.2f} s"
        )


if __name__ == "__main__":
    main()
