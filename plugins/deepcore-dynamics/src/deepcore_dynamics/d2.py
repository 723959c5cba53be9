"""D2 pruning: message passing of a difficulty score over the k-NN graph, then a greedy.

Maharana, Yadav & Bansal, ICLR 2024 (arXiv 2310.07931). The forward pass adds to each
sample's score its neighbours' scores weighted by exp(-gamma_forward * d); the greedy then
repeatedly takes the highest message and lowers each of its neighbours' messages by
exp(-gamma * d) times the taken message, so picks spread over dense regions.
"""

from __future__ import annotations

import numpy as np


def d2_select(
    score: np.ndarray,
    dist: np.ndarray,
    nbr: np.ndarray,
    k: int,
    gamma: float,
    gamma_forward: float,
) -> np.ndarray:
    """Pick ``k`` positions from a pool.

    :param score: difficulty per sample (higher = more important), n.
    :param dist: distances to each sample's neighbours, n x m; ``nbr``: their positions.
    """
    msg = score + (np.exp(-gamma_forward * dist) * score[nbr]).sum(1)
    taken = np.zeros(len(score), dtype=bool)
    picks = np.empty(k, dtype=np.int64)
    down = np.exp(-gamma * dist)
    for t in range(k):
        e = int(np.argmax(np.where(taken, -np.inf, msg)))
        picks[t] = e
        taken[e] = True
        np.subtract.at(msg, nbr[e], down[e] * msg[e])
    return picks
