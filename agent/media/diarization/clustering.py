"""Agglomerative clustering of unit-length embeddings by cosine similarity (average linkage).

Every item starts as its own group; the two most similar groups merge until no pair is similar
enough (``threshold``), or until ``num_clusters`` groups are left when the count is known. The
similarity of a merged group to another is the weighted mean of its parts' (Lance-Williams), so
each step costs one pass over the similarity matrix: an hour of speech (~1000 segments) groups
in about a second.

The matrix is N x N and there are up to N merges, so past ``MAX_ITEMS`` items (about 5 hours of
speech) only an evenly spread sample of ``MAX_ITEMS`` is clustered that way; every other item
joins the group whose (weighted mean) centroid it is most similar to. That keeps the memory at
``MAX_ITEMS``² floats (32 MB) and the time at a few seconds however long the recording is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

MAX_ITEMS = 2000
"""The most items clustered pairwise; a longer list clusters a sample and assigns the rest."""

CHECK_EVERY = 50
"""Merges between calls of the ``check`` callback."""


def cluster_embeddings(
    vectors: np.ndarray[Any, Any],
    weights: np.ndarray[Any, Any] | None = None,
    *,
    threshold: float,
    num_clusters: int | None = None,
    check: Callable[[], None] | None = None,
) -> list[int]:
    """A group number per row of ``vectors`` (rows of unit length), numbered from 0.

    ``weights`` (e.g. segment durations, default 1) count how much each row weighs in the mean
    similarity of a group. ``check`` is called every ``CHECK_EVERY`` merges and may raise to stop
    the work (e.g. when the task is cancelled).
    """
    import numpy as np

    count = len(vectors)
    if count == 0:
        return []
    rows = np.asarray(vectors, dtype=np.float64)
    mass = np.ones(count) if weights is None else np.asarray(weights, dtype=np.float64).copy()
    wanted = None if num_clusters is None else max(1, min(num_clusters, count))
    if count <= MAX_ITEMS:
        owner = _agglomerate(rows, mass, threshold, wanted, check)
    else:
        sample = np.unique(np.linspace(0, count - 1, MAX_ITEMS).round().astype(np.int64))
        sample_owner = _agglomerate(rows[sample], mass[sample], threshold, wanted, check)
        _, sample_groups = np.unique(sample_owner, return_inverse=True)
        centroids = np.zeros((int(sample_groups.max()) + 1, rows.shape[1]))
        np.add.at(centroids, sample_groups, rows[sample] * mass[sample, None])
        centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
        owner = np.argmax(rows @ centroids.T, axis=1)
        owner[sample] = sample_groups
    _, groups = np.unique(owner, return_inverse=True)
    return [int(group) for group in groups]


def _agglomerate(
    rows: np.ndarray[Any, Any],
    mass: np.ndarray[Any, Any],
    threshold: float,
    wanted: int | None,
    check: Callable[[], None] | None,
) -> np.ndarray[Any, Any]:
    """The group each row ends in, named by one of its members' index."""
    import numpy as np

    count = len(rows)
    similarity = rows @ rows.T
    np.fill_diagonal(similarity, -np.inf)
    owner = np.arange(count)
    alive = count
    merges = 0
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
        merges += 1
        if check is not None and merges % CHECK_EVERY == 0:
            check()
    return owner
