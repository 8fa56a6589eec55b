"""Reading a prepared dataset for training: random access, padding/masks at load time, exact resume.

    data = PretrainData(dataset_dir, vocab_path=None)
    stream = BatchStream(data.train, global_batch_size, micro_batch_size, seed, rank, world_size)
    micro_batches = stream.next_step()          # this rank's share of the next optimizer step
    BatchStream(..., prefetch=2)                # optional: build 2 steps ahead in a background thread
    ckpt["data"] = stream.state_dict()          # restore with stream.load_state_dict(...)

Global order (what makes resume and world-size changes exact): epoch e is a permutation of
range(n) drawn from np.random.default_rng([seed, e]) (identity without shuffling); the epochs are
concatenated into one infinite sequence; global step s takes positions [s*G, (s+1)*G) of it
(crossing epochs when needed); rank r takes the contiguous slice [r*G/W, (r+1)*G/W) and cuts it
into consecutive micro-batches. The state is the step counter, so it restores under any world size.
Several datasets mixed at chosen shares (mixture.py) map the same positions to their rows.
"""
from __future__ import annotations

import json
import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from electra.data.background import in_background
from electra.data.mixture import Mixture
from electra.data.shards import FORMAT_NAME, FORMAT_VERSION, SPLITS, SplitArrays, read_shard_info
from electra.data.tokenizer import SpecialIds, vocab_sha256
from electra.errors import UserError


class Examples:
    """All examples of one split over all shards; x[i] is an unpadded int64 array."""

    def __init__(self, shard_dirs: Sequence[Path], counts: Sequence[int], dtype: np.dtype, split: str,
                 seq_len: int, special: SpecialIds, max_open: int = 256, vocab_size: int | None = None) -> None:
        self.seq_len, self.special = seq_len, special  # what collate needs (BatchStream reads them)
        self.vocab_size = vocab_size  # when given, a shard's token ids are checked against it when first opened
        self._checked: set[int] = set()
        self._dirs = list(shard_dirs)
        self._counts = [int(c) for c in counts]
        self._starts = np.concatenate([[0], np.cumsum(self._counts, dtype=np.int64)])
        self._dtype = dtype
        self._split = split
        self._open: dict[int, SplitArrays] = {}  # lazily opened; bounded so huge datasets keep few files open
        self._max_open = max_open
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return int(self._starts[-1])

    def _arrays(self, k: int) -> SplitArrays:
        arr = self._open.get(k)
        if arr is None:
            with self._lock:  # a BatchStream prefetch thread may read concurrently
                if len(self._open) >= self._max_open:
                    self._open.pop(next(iter(self._open)))
                arr = self._open[k] = SplitArrays(self._dirs[k], self._split, self._dtype, self._counts[k])
                if k not in self._checked:
                    self._check(k, arr)
                    self._checked.add(k)
        return arr

    def _check(self, k: int, arr: SplitArrays) -> None:
        """Files of the recorded sizes can still hold damaged bytes: offsets that do not cut the tokens into
        examples of 2..seq_len tokens, or token ids outside the vocabulary. One pass, when a shard first opens."""
        off = np.asarray(arr.offsets)
        if self._counts[k]:
            lengths = np.diff(off)
            bad = off[0] != 0 or off[-1] != len(arr.tokens) or lengths.min() < 2 or lengths.max() > self.seq_len
            top = int(np.max(arr.tokens)) if len(arr.tokens) else 0
            if bad or (self.vocab_size is not None and top >= self.vocab_size):
                what = "example offsets" if bad else f"token ids (up to {top}, vocabulary {self.vocab_size})"
                raise UserError(f"dataset shard {self._dirs[k]} is damaged: its {self._split} {what} are not valid; "
                                f"delete the shard and re-run `electra prepare` with the same arguments to rebuild it")

    def __getitem__(self, i: int) -> np.ndarray:
        # Scalar code on purpose: take([i])[0] is about 2.5x slower for one row.
        n = len(self)
        i = int(i)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"example {i} out of range for {n} examples")
        k = int(np.searchsorted(self._starts, i, side="right")) - 1
        return self._arrays(k).get(i - int(self._starts[k]))

    def take(self, indices: Sequence[int] | np.ndarray) -> list[np.ndarray]:
        """[self[i] for i in indices], locating all of them in the shards with one searchsorted."""
        n = len(self)
        idx = np.array(indices, dtype=np.int64).reshape(-1)
        idx[idx < 0] += n
        bad = (idx < 0) | (idx >= n)
        if bad.any():
            raise IndexError(f"example {int(idx[bad][0])} out of range for {n} examples")
        shards = np.searchsorted(self._starts, idx, side="right") - 1
        local = idx - self._starts[shards]
        return [self._arrays(k).get(j) for k, j in zip(shards.tolist(), local.tolist())]

    def token_counts(self, vocab_size: int, chunk: int = 1 << 26) -> np.ndarray:
        """How often each token id occurs in the split: (vocab_size,) int64, one pass over the token files."""
        counts = np.zeros(vocab_size, np.int64)
        for k in range(len(self._dirs)):
            tokens = self._arrays(k).tokens if self._counts[k] else ()
            for a in range(0, len(tokens), chunk):  # bounded memory on shards of any size
                c = np.bincount(np.asarray(tokens[a:a + chunk]), minlength=vocab_size)
                if len(c) > vocab_size:
                    raise UserError(f"{self._dirs[k]} holds token id {len(c) - 1}, outside the {vocab_size}-token vocabulary")
                counts += c
        return counts

    def lengths(self) -> np.ndarray:
        """Length of every example (reads the offset files)."""
        parts = [self._arrays(k).lengths() for k in range(len(self._dirs)) if self._counts[k]]
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)


class PretrainData:
    """A prepared dataset folder (see docs/data.md); UserError if it is missing, incomplete or mismatched."""

    def __init__(self, dataset_dir: str | Path, vocab_path: str | Path | None = None) -> None:
        root = Path(dataset_dir)
        if root.is_file():
            raise UserError(f"dataset {root} is a file; pass the folder `electra prepare` wrote (its --out)")
        if not root.is_dir():
            raise UserError(f"dataset {root} does not exist; build it with `electra prepare CORPUS --out {root}`")
        meta_path = root / "meta.json"
        if not meta_path.is_file():
            if any(root.glob("shard-*")) or any(root.glob(".tmp-*")):
                raise UserError(f"dataset {root} is incomplete (no meta.json: `electra prepare` was interrupted); "
                                "re-run the same `electra prepare` command to finish it")
            raise UserError(f"{root} is not a prepared dataset (no meta.json); build it with `electra prepare`")
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError) as e:
            raise UserError(f"{meta_path} is unreadable ({e}); re-run `electra prepare`") from None
        if meta.get("format") != FORMAT_NAME or meta.get("version") != FORMAT_VERSION:
            raise UserError(f"{root} is not an {FORMAT_NAME} v{FORMAT_VERSION} "
                            f"(meta.json says {meta.get('format')!r} "
                            f"v{meta.get('version')!r}); re-run `electra prepare` with this version")
        try:
            self._read_meta(root, meta, vocab_path)
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(f"{meta_path} is damaged (bad or missing {e}); re-run `electra prepare`") from None

    def _read_meta(self, root: Path, meta: dict, vocab_path: str | Path | None) -> None:
        self.root = root
        self.meta = meta
        self.vocab_path = root / meta["vocab"]["file"]
        recorded = meta["vocab"]["sha256"]
        if not self.vocab_path.is_file() or vocab_sha256(self.vocab_path) != recorded:
            raise UserError(f"dataset {root}: its vocab copy {self.vocab_path} is missing or differs from the recorded "
                            f"sha256 {recorded[:12]}; re-run `electra prepare`")
        if vocab_path is not None:
            given = vocab_sha256(vocab_path)
            if given != recorded:
                raise UserError(f"vocab {vocab_path} (sha256 {given[:12]}) is not the vocab dataset {root} was built "
                                f"with ({self.vocab_path}, sha256 {recorded[:12]}); use that vocab or re-prepare")
        settings = meta["settings"]
        self.seq_len: int = int(settings["seq_len"])
        self.lowercase: bool = bool(settings["lowercase"])
        self.strip_accents: bool | None = settings.get("strip_accents")
        self.vocab_size: int = int(meta["vocab"]["size"])
        self.special = SpecialIds(**meta["vocab"]["special"])
        dtype = np.dtype(meta["dtype"])
        dirs = [root / s["name"] for s in meta["shards"]]
        for d, s in zip(dirs, meta["shards"]):
            info = read_shard_info(d)
            if info is None or any(info["counts"][sp]["examples"] != s[sp] for sp in SPLITS):
                raise UserError(f"dataset {root}: shard {d.name} is missing or damaged; re-run `electra prepare` "
                                "with the same arguments to rebuild it")
        self.train, self.valid = (Examples(dirs, [s[split] for s in meta["shards"]], dtype, split, self.seq_len,
                                           self.special, vocab_size=self.vocab_size) for split in ("train", "valid"))

    def __repr__(self) -> str:
        return (f"PretrainData({str(self.root)!r}, train={len(self.train)}, valid={len(self.valid)}, "
                f"seq_len={self.seq_len}, vocab_size={self.vocab_size})")


class Batch(NamedTuple):
    """A fixed-shape batch: [B, seq_len] each."""

    input_ids: torch.Tensor  # int64
    segment_ids: torch.Tensor  # int64: 0 up to and including the first [SEP], 1 after, 0 on padding
    attention_mask: torch.Tensor  # bool: True on real tokens


def collate(rows: Sequence[np.ndarray], seq_len: int, special: SpecialIds) -> Batch:
    """Pad unpadded [CLS] A [SEP] (B [SEP]) rows to exactly seq_len and derive masks/segments (spec 2.1 step 6)."""
    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    if len(rows) and lengths.max() > seq_len:
        raise ValueError(f"example of length {int(lengths.max())} does not fit seq_len {seq_len}")
    mask = np.arange(seq_len)[None, :] < lengths[:, None]  # (B, T): the first len(row) slots of each row
    ids = np.full((len(rows), seq_len), special.pad, dtype=np.int64)
    if len(rows):
        ids[mask] = np.concatenate(rows)  # row-major order of the mask = the rows end to end
    is_sep = ids == special.sep
    seg = ((np.cumsum(is_sep, axis=1) - is_sep) > 0) & mask  # segment B: after the first [SEP], up to the end
    return Batch(torch.from_numpy(ids), torch.from_numpy(seg.astype(np.int64)), torch.from_numpy(mask))


class BatchStream:
    """Deterministic, resumable, rank-sliced micro-batches (see the module docstring for the order)."""

    def __init__(self, examples: Examples | Mixture, global_batch_size: int, micro_batch_size: int, seed: int,
                 rank: int = 0, world_size: int = 1, shuffle: bool = True, prefetch: int = 0,
                 transform: Callable[[Batch], object] | None = None) -> None:
        G, M, W = int(global_batch_size), int(micro_batch_size), int(world_size)
        if G <= 0 or M <= 0 or W <= 0 or G % (W * M) != 0:
            raise UserError(f"global batch size {G} must be a positive multiple of world_size {W} x "
                            f"micro batch size {M} (= {W * M})")
        if not 0 <= rank < W:
            raise UserError(f"rank {rank} out of range for world size {W}")
        if len(examples) == 0:
            raise UserError("no examples to stream (empty split); prepare a bigger corpus or use the other split")
        self.examples = examples
        self.G, self.M, self.W, self.rank = G, M, W, int(rank)
        self.seed = int(seed)
        self.shuffle = bool(shuffle)
        self.n = len(examples)
        self.step = 0
        self.seq_len, self.special = int(examples.seq_len), examples.special
        self._perms: dict[int, np.ndarray] = {}
        # prefetch > 0: build that many steps ahead in a background thread (same batches, same order).
        self.prefetch = int(prefetch)
        self._prefetcher: Generator[tuple[int, list], None, None] | None = None
        # transform: applied to every micro-batch where it is built (in the prefetch thread when there is one),
        # e.g. pinning host memory for asynchronous copies to a GPU
        self.transform = transform

    def _perm(self, epoch: int) -> np.ndarray:
        p = self._perms.get(epoch)
        if p is None:
            # Keep at most the current and the next epoch's permutation.
            self._perms = {e: v for e, v in self._perms.items() if e >= epoch - 1 and e <= epoch}
            p = self._perms[epoch] = np.random.default_rng([self.seed, epoch]).permutation(self.n)
        return p

    def indices(self, step: int) -> np.ndarray:
        """Example indices this rank processes at global step `step` (in micro-batch order)."""
        share = self.G // self.W
        start = step * self.G + self.rank * share
        pos = np.arange(start, start + share, dtype=np.int64)
        if isinstance(self.examples, Mixture):  # each source's share, each source its own epochs (mixture.py)
            return self.examples.rows(pos, self.seed, self.shuffle)
        if not self.shuffle:
            return pos % self.n
        out = np.empty(share, dtype=np.int64)
        epochs = pos // self.n
        for e in np.unique(epochs):
            sel = epochs == e
            out[sel] = self._perm(int(e))[pos[sel] % self.n]
        return out

    def build_step(self, step: int) -> list[Batch]:
        """This rank's micro-batches of global step `step` (pure function of step and the settings)."""
        rows = self.examples.take(self.indices(step))  # one searchsorted for the whole step
        return [collate(rows[k:k + self.M], self.seq_len, self.special) for k in range(0, len(rows), self.M)]

    def _build(self, step: int) -> list:
        batches = self.build_step(step)
        return batches if self.transform is None else [self.transform(b) for b in batches]

    def _steps_from(self, step: int) -> Iterator[tuple[int, list]]:
        while True:
            yield step, self._build(step)
            step += 1

    def next_step(self) -> list:
        """This rank's micro-batches of the current step (each through `transform` if set); advances the stream."""
        if self.prefetch <= 0:
            batches = self._build(self.step)
        else:
            if self._prefetcher is None:
                self._prefetcher = in_background(self._steps_from(self.step), self.prefetch)
            try:
                got, batches = next(self._prefetcher)
            except BaseException:
                self.close()  # the thread ended with the error: a retry starts a fresh one at this step
                raise
            assert got == self.step, (got, self.step)  # the thread builds exactly steps step, step+1, ...
        self.step += 1
        return batches

    def close(self) -> None:
        """Stop the prefetch thread (if any); the next `next_step` restarts it where the stream is."""
        if self._prefetcher is not None:
            self._prefetcher.close()
            self._prefetcher = None

    def state_dict(self) -> dict:
        d = {"step": self.step, "seed": self.seed, "global_batch_size": self.G, "num_examples": self.n,
             "shuffle": self.shuffle}
        return d | ({"mixture": self.examples.state()} if isinstance(self.examples, Mixture) else {})

    def load_state_dict(self, d: dict) -> None:
        mixture = self.examples.state() if isinstance(self.examples, Mixture) else None
        if d.get("mixture") != mixture:
            raise UserError(f"cannot resume the data stream: it was {_mix(d.get('mixture'))} but this run is "
                            f"{_mix(mixture)}; use the same --data datasets and --data-weights")
        for k, mine in (("seed", self.seed), ("global_batch_size", self.G), ("num_examples", self.n),
                        ("shuffle", self.shuffle)):
            if k in d and d[k] != mine:
                raise UserError(f"cannot resume the data stream: saved {k}={d[k]} but this run has {k}={mine}; "
                                "use the same dataset, seed and global batch size")
        self.close()
        self.step = int(d["step"])


def _mix(state: dict | None) -> str:
    if state is None:
        return "one dataset"
    return "a mixture of " + ", ".join(f"{n:,} rows at {w:.3g}" for n, w in zip(state["sizes"], state["weights"]))
