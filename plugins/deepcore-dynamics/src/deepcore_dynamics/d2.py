"""D2 pruning: message passing of a difficulty score over the k-NN graph, then a greedy.

Maharana, Yadav & Bansal, ICLR 2024 (arXiv 2310.07931). The graph joins each sample to its
``k`` nearest neighbours; as in the paper its edges are undirected (a sample is also linked
to every sample that counts it among its neighbours), or directed (each sample's own ``k``
only, as the authors' code does for large data). The forward pass adds to each sample's
score its neighbours' scores weighted by exp(-gamma_forward * d); the greedy then repeatedly
takes the highest message and lowers each neighbour's message by exp(-gamma * d) times the
taken message, so picks spread over dense regions.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Graph(NamedTuple):
    """A sparse graph in compressed rows: the neighbours of node ``i`` are
    ``cols[start[i]:start[i + 1]]`` at distances ``dist[start[i]:start[i + 1]]``."""

    start: np.ndarray
    cols: np.ndarray
    dist: np.ndarray


def knn_graph(dist: np.ndarray, nbr: np.ndarray, undirected: bool) -> Graph:
    """The k-NN graph of n nodes from each node's neighbours (``nbr``, n x m) and their
    distances; ``undirected`` adds the reverse of every edge (an edge found from both ends
    is kept once)."""
    n, m = nbr.shape
    rows = np.repeat(np.arange(n, dtype=np.int64), m)
    cols = nbr.reshape(-1).astype(np.int64)
    d = dist.reshape(-1).astype(np.float64)
    if undirected:
        rows, cols, d = np.concatenate([rows, cols]), np.concatenate([cols, rows]), np.tile(d, 2)
        _, first = np.unique(rows * n + cols, return_index=True)  # also sorts by (row, col)
        rows, cols, d = rows[first], cols[first], d[first]
    else:
        order = np.lexsort((cols, rows))
        rows, cols, d = rows[order], cols[order], d[order]
    start = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=start[1:])
    return Graph(start, cols, d)


def d2_select(
    score: np.ndarray, graph: Graph, k: int, gamma: float, gamma_forward: float
) -> np.ndarray:
    """Pick ``k`` positions from a pool.

    :param score: difficulty per sample (higher = more important), n.
    :param graph: the pool's k-NN graph (:func:`knn_graph`).
    """
    start, cols, dist = graph
    row = np.repeat(np.arange(len(score)), np.diff(start))
    msg = score + np.bincount(
        row, weights=np.exp(-gamma_forward * dist) * score[cols], minlength=len(score)
    )
    taken = np.zeros(len(score), dtype=bool)
    picks = np.empty(k, dtype=np.int64)
    down = np.exp(-gamma * dist)
    for t in range(k):
        e = int(np.argmax(np.where(taken, -np.inf, msg)))
        picks[t] = e
        taken[e] = True
        lo, hi = start[e], start[e + 1]
        msg[cols[lo:hi]] -= down[lo:hi] * msg[e]  # one edge per neighbour: no repeats
    return picks
