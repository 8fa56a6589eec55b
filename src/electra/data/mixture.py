"""Training on several prepared datasets at once, each taking a fixed share of the rows (`--data A B --data-weights`).

    train = Mixture([a.train, b.train], weights=[3, 1])     # 3/4 of the rows from a, 1/4 from b
    stream = BatchStream(train, global_batch_size, ...)    # as with one dataset: exact resume, any world size

A domain corpus mixed with general text, or several languages at chosen rates: the shares are the weights,
whatever the datasets' sizes, so a small source is repeated (more epochs of it) and a large one not exhausted.

The order is a pure function of the seed and the position in the global stream, as for one dataset
(dataset.py), so a resumed or re-sharded run reads exactly what an uninterrupted one would:
- positions come in blocks of BLOCK = 65,536; every block holds each source's fixed count (its weight x BLOCK,
  rounded by largest remainder) in an order drawn from np.random.default_rng([seed, MIX, block]);
- the j-th row any source gives is the j-th entry of that source's own endless sequence of epochs, epoch e a
  permutation of its rows drawn from np.random.default_rng([seed, source, e]); j is known in closed form
  (block x its count + the rank within the block), so no state beyond the step is needed.
Global example indices are the sources' rows laid end to end (source s's row i is offsets[s] + i).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from electra.errors import UserError

if TYPE_CHECKING:  # dataset.py reads mixtures
    from electra.data.dataset import Examples

BLOCK = 1 << 16
MIX = 0x6D6978  # "mix": keeps the block orders' seeds apart from the epochs' [seed, source, epoch]


def block_counts(weights: Sequence[float], block: int = BLOCK) -> np.ndarray:
    """Rows per block for each source: weight shares of `block`, rounded by largest remainder (they sum to it)."""
    w = np.asarray(weights, dtype=np.float64)
    exact = w / w.sum() * block
    counts = np.floor(exact).astype(np.int64)
    counts[np.argsort(-(exact - counts), kind="stable")[:block - counts.sum()]] += 1
    return counts


class Mixture:
    """Several training splits read as one, each source taking its share of every block of rows."""

    def __init__(self, sources: Sequence[Examples], weights: Sequence[float], names: Sequence[str] | None = None) -> None:
        names = list(names or [f"source {s}" for s in range(len(sources))])
        if len(sources) < 2 or len(weights) != len(sources):
            raise UserError(f"a mixture needs 2 or more datasets and one weight each, got {len(sources)} and "
                            f"{len(weights)} weights")
        for name, n in zip(names, map(len, sources)):
            if n == 0:
                raise UserError(f"{name} has no training examples; prepare a bigger corpus or leave it out")
        if any(not (w > 0 and np.isfinite(w)) for w in weights):
            raise UserError(f"--data-weights must be positive numbers, got {','.join(map(str, weights))}")
        self.per_block = block_counts(weights)
        for name, c in zip(names, self.per_block):
            if c == 0:
                raise UserError(f"{name}'s weight is under 1/{BLOCK} of the total; raise it or leave the dataset out")
        self.sources, self.names = list(sources), names
        self.weights = [float(w) for w in np.asarray(weights, dtype=np.float64) / np.sum(weights)]
        self.sizes = np.array([len(s) for s in sources], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)])
        self.seq_len, self.special = sources[0].seq_len, sources[0].special  # checked alike by the caller
        self._blocks: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        self._perms: dict[tuple[int, int, int], np.ndarray] = {}

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def state(self) -> dict:
        """What a resumed run must match: the sources' sizes and the shares."""
        return {"sizes": self.sizes.tolist(), "weights": [round(w, 12) for w in self.weights]}

    def describe(self) -> str:
        """' (mixed: a 75%, b 25%)', the datasets by folder name."""
        return " (mixed: " + ", ".join(f"{Path(n).name} {w:.0%}" for n, w in zip(self.names, self.weights)) + ")"

    def _block(self, seed: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        """(source, rank) of each position in block b: which source it reads and how many rows that source
        gave earlier in the block."""
        key = (seed, b)
        if key not in self._blocks:
            if len(self._blocks) >= 4:  # a step touches one or two blocks
                self._blocks.pop(next(iter(self._blocks)))
            source = np.random.default_rng([seed, MIX, b]).permutation(np.repeat(np.arange(len(self.sources)),
                                                                                 self.per_block))
            rank = np.empty(BLOCK, dtype=np.int64)
            for s in range(len(self.sources)):
                at = source == s
                rank[at] = np.arange(int(at.sum()))
            self._blocks[key] = (source, rank)
        return self._blocks[key]

    def _perm(self, seed: int, s: int, epoch: int) -> np.ndarray:
        key = (seed, s, epoch)
        if key not in self._perms:
            if len(self._perms) >= 2 * len(self.sources):  # each source's current and next epoch
                self._perms.pop(next(iter(self._perms)))
            self._perms[key] = np.random.default_rng([seed, s, epoch]).permutation(int(self.sizes[s]))
        return self._perms[key]

    def rows(self, positions: np.ndarray, seed: int, shuffle: bool = True) -> np.ndarray:
        """Global example indices at these positions of the stream (any positions, any order)."""
        out = np.empty(len(positions), dtype=np.int64)
        blocks = positions // BLOCK
        for b in np.unique(blocks):
            at = np.flatnonzero(blocks == b)
            source, rank = self._block(seed, int(b))
            src = source[positions[at] % BLOCK]
            j = int(b) * self.per_block[src] + rank[positions[at] % BLOCK]  # the row's place in its source's stream
            for s in np.unique(src):
                sel = src == s
                n = int(self.sizes[s])
                local = j[sel] % n
                if shuffle:
                    epochs = j[sel] // n
                    for e in np.unique(epochs):
                        local[epochs == e] = self._perm(seed, int(s), int(e))[local[epochs == e]]
                out[at[sel]] = self.offsets[s] + local
        return out

    def take(self, indices: Sequence[int] | np.ndarray) -> list[np.ndarray]:
        """[row i of the sources laid end to end for i in indices], each source read with one `take`."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if len(idx) and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"example index out of range for {len(self)} examples")
        src = np.searchsorted(self.offsets, idx, side="right") - 1
        out: list[np.ndarray] = [None] * len(idx)  # type: ignore[list-item]
        for s in np.unique(src):
            at = np.flatnonzero(src == s)
            for k, row in zip(at, self.sources[s].take(idx[at] - self.offsets[s])):
                out[k] = row
        return out

    def __getitem__(self, i: int) -> np.ndarray:
        return self.take([i])[0]

    def token_counts(self, vocab_size: int) -> np.ndarray:
        """Each token id's expected count per row drawn from the mixture (float64): the sources' counts per row,
        weighted by their shares. The unigram generator's prior."""
        return sum(w * src.token_counts(vocab_size) / len(src) for w, src in zip(self.weights, self.sources))

    def lengths(self) -> np.ndarray:
        return np.concatenate([s.lengths() for s in self.sources])
