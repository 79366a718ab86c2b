"""Agglomerative clustering of unit-length embeddings by cosine similarity (average linkage).

Every item starts as its own group; the two most similar groups merge until no pair is similar
enough (``threshold``), or until ``num_clusters`` groups are left when the count is known. The
similarity of a merged group to another is the weighted mean of its parts' (Lance-Williams), so
each step costs one pass over the similarity matrix: an hour of speech (~1000 segments) groups
in about a second.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np


def cluster_embeddings(
    vectors: np.ndarray[Any, Any],
    weights: np.ndarray[Any, Any] | None = None,
    *,
    threshold: float,
    num_clusters: int | None = None,
) -> list[int]:
    """A group number per row of ``vectors`` (rows of unit length), numbered from 0.

    ``weights`` (e.g. segment durations, default 1) count how much each row weighs in the mean
    similarity of a group.
    """
    import numpy as np

    count = len(vectors)
    if count == 0:
        return []
    similarity = np.asarray(vectors, dtype=np.float64) @ np.asarray(vectors, dtype=np.float64).T
    mass = np.ones(count) if weights is None else np.asarray(weights, dtype=np.float64).copy()
    np.fill_diagonal(similarity, -np.inf)
    owner = np.arange(count)
    alive = count
    wanted = None if num_clusters is None else max(1, min(num_clusters, count))
    while alive > 1:
        flat = int(np.argmax(similarity))
        first, second = divmod(flat, count)
        best = similarity[first, second]
        if wanted is None and best < threshold:
            break
        if wanted is not None and alive <= wanted:
            break
        merged = (mass[first] * similarity[first] + mass[second] * similarity[second]) / (
            mass[first] + mass[second]
        )
        similarity[first, :] = merged
        similarity[:, first] = merged
        similarity[first, first] = -np.inf
        similarity[second, :] = -np.inf
        similarity[:, second] = -np.inf
        mass[first] += mass[second]
        owner[owner == second] = first
        alive -= 1
    _, groups = np.unique(owner, return_inverse=True)
    return [int(group) for group in groups]
