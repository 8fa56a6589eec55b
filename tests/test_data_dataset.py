"""Reading for training: PretrainData checks, collate, BatchStream order/ranks/resume (issue 2, point 5)."""
from __future__ import annotations

import itertools
import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from data_helpers import WORDS, write_docs, write_vocab

from electra.cli import main as cli
from electra.data.background import in_background
from electra.data.dataset import Batch, BatchStream, PretrainData, collate
from electra.data.tokenizer import SpecialIds, vocab_sha256
from electra.errors import UserError

SP = SpecialIds(pad=0, unk=1, cls=2, sep=3, mask=4)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ds")
    vocab = write_vocab(root / "vocab.txt")
    for k in range(3):
        write_docs(root / f"c{k}.txt", 120, seed=k)
    assert cli(["prepare", *(str(root / f"c{k}.txt") for k in range(3)), "--vocab", str(vocab), "--seq-len", "32",
                "--out", str(root / "ds"), "--unit-mb", "0.005", "--valid-fraction", "0.05", "--quiet"]) == 0
    return root / "ds"


def test_pretrain_data_attributes(dataset: Path) -> None:
    data = PretrainData(dataset, vocab_path=dataset.parent / "vocab.txt")
    assert data.seq_len == 32 and data.vocab_size == 5 + 4 + len(WORDS) and data.lowercase is True
    assert data.special == SP and data.vocab_path == dataset / "vocab.txt"
    assert len(data.meta["shards"]) == 3 and len(data.train) > 300 and len(data.valid) > 5
    x = data.train[len(data.train) - 1]
    assert x.dtype == np.int64 and x[0] == SP.cls and x[-1] == SP.sep and len(x) <= 32 and SP.pad not in x
    assert np.array_equal(data.train[-1], x)
    with pytest.raises(IndexError):
        data.train[len(data.train)]
    assert data.train.lengths().sum() == data.meta["counts"]["train"]["tokens"]


def test_take_reads_the_same_rows_as_the_shard_files(dataset: Path) -> None:
    data = PretrainData(dataset)
    n = len(data.train)
    tokens = np.concatenate([np.fromfile(dataset / s["name"] / "train.tokens.bin", dtype=data.meta["dtype"])
                             for s in data.meta["shards"]])
    rows = data.train.take(np.arange(n))
    assert np.array_equal(np.concatenate(rows), tokens)
    assert [len(r) for r in rows] == data.train.lengths().tolist()
    picked = [n - 1, 0, -1, 5, 5, -n]
    assert all(np.array_equal(r, rows[i]) and np.array_equal(r, data.train[i])
               for r, i in zip(data.train.take(picked), picked))
    with pytest.raises(IndexError, match=f"example {n} out of range"):
        data.train.take([0, n])
    with pytest.raises(IndexError):
        data.train[-n - 1]


def test_pretrain_data_refuses_bad_folders(dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        PretrainData(tmp_path / "nothing")
    with pytest.raises(UserError, match="not a prepared dataset"):
        PretrainData(tmp_path)
    other = write_vocab(tmp_path / "other.txt", extra=("zzz",))
    with pytest.raises(UserError) as e:
        PretrainData(dataset, vocab_path=other)
    msg = str(e.value)
    assert str(other) in msg and vocab_sha256(other)[:12] in msg and vocab_sha256(dataset / "vocab.txt")[:12] in msg
    broken = tmp_path / "copy"
    shutil.copytree(dataset, broken)
    (broken / "meta.json").unlink()
    with pytest.raises(UserError, match="incomplete"):
        PretrainData(broken)
    shutil.rmtree(broken)
    shutil.copytree(dataset, broken)
    shard = sorted(broken.glob("shard-*"))[1]
    with open(shard / "train.tokens.bin", "r+b") as f:
        f.truncate(10)
    with pytest.raises(UserError, match="damaged"):
        PretrainData(broken)
    (broken / "vocab.txt").write_text("[PAD]\n")
    with pytest.raises(UserError, match="vocab copy"):
        PretrainData(broken)
    meta = json.loads((dataset / "meta.json").read_text())
    (broken / "meta.json").write_text(json.dumps({**meta, "version": 99}))
    with pytest.raises(UserError, match="v99"):
        PretrainData(broken)


def test_damaged_bytes_in_files_of_the_right_size_are_caught(dataset: Path, tmp_path: Path) -> None:
    """Bit rot keeps file sizes: ids outside the vocabulary or offsets that do not cut the tokens into examples
    are one-line errors when the shard opens, not an IndexError in the embedding or a silently wrong row."""
    with pytest.raises(UserError, match="is a file"):
        PretrainData(dataset / "meta.json")
    for name, damage, needle in [
        ("train.tokens.bin", lambda a: a.__setitem__(slice(7, 9), 0xFFFF), r"token ids \(up to 65535"),
        ("train.offsets.bin", lambda a: a.__setitem__(3, a[3] + 40), "example offsets"),
        ("train.offsets.bin", lambda a: a.__setitem__(slice(3, 5), a[3:5][::-1].copy()), "example offsets"),
    ]:
        broken = tmp_path / "copy"
        shutil.rmtree(broken, ignore_errors=True)
        shutil.copytree(dataset, broken)
        shard = min(broken.glob("shard-*"))
        arr = np.memmap(shard / name, dtype=np.uint16 if "tokens" in name else "<i8", mode="r+")
        damage(arr)
        arr.flush()
        del arr
        data = PretrainData(broken)  # sizes agree: only opening the shard can tell
        with pytest.raises(UserError, match=needle) as e:
            data.train.take(range(len(data.train)))
        assert shard.name in str(e.value) and "re-run `electra prepare`" in str(e.value)
    meta = json.loads((dataset / "meta.json").read_text())
    del meta["vocab"]
    (broken / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match=r"meta.json is damaged \(bad or missing 'vocab'\)"):
        PretrainData(broken)


def test_collate_pads_and_derives_masks() -> None:
    rows = [np.array([2, 10, 11, 3, 12, 3]), np.array([2, 13, 3]), np.array([2, 5, 6, 7, 3, 8, 9, 3])]
    b = collate(rows, 8, SP)
    assert isinstance(b, Batch) and b.input_ids.shape == b.segment_ids.shape == b.attention_mask.shape == (3, 8)
    assert b.input_ids.dtype == torch.long and b.segment_ids.dtype == torch.long and b.attention_mask.dtype == torch.bool
    assert b.input_ids[0].tolist() == [2, 10, 11, 3, 12, 3, 0, 0]
    assert b.segment_ids[0].tolist() == [0, 0, 0, 0, 1, 1, 0, 0]
    assert b.attention_mask[0].tolist() == [True] * 6 + [False] * 2
    assert b.segment_ids[1].tolist() == [0] * 8 and b.attention_mask[1].sum() == 3
    assert b.segment_ids[2].tolist() == [0, 0, 0, 0, 0, 1, 1, 1] and bool(b.attention_mask[2].all())
    with pytest.raises(ValueError):
        collate([np.arange(9)], 8, SP)


class Rows:
    """A stand-in Examples: row i is [CLS] i [SEP] (so batches reveal which examples they hold)."""

    seq_len = 4
    special = SP

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> np.ndarray:
        return np.array([SP.cls, 100 + i, SP.sep])

    def take(self, indices: np.ndarray) -> list[np.ndarray]:
        return [self[int(i)] for i in indices]


def ids_of(batches: list[Batch]) -> list[int]:
    return [int(v) - 100 for b in batches for v in b.input_ids[:, 1]]


def test_batch_stream_global_order_and_ranks() -> None:
    n, G = 10, 4
    s = BatchStream(Rows(n), G, 2, seed=7)
    order = np.concatenate([np.random.default_rng([7, e]).permutation(n) for e in range(3)])
    steps = [s.next_step() for _ in range(7)]  # 28 positions: crosses two epoch boundaries
    assert all(len(st) == 2 and st[0].input_ids.shape == (2, 4) for st in steps)
    assert [i for st in steps for i in ids_of(st)] == order[:28].tolist()
    # W ranks: contiguous slices of each step; W=1 micro-batches are all ranks' micro-batches in rank order
    for W, M in ((2, 2), (4, 1), (2, 1)):
        ranks = [BatchStream(Rows(n), G, M, seed=7, rank=r, world_size=W) for r in range(W)]
        for step in range(7):
            parts = [ranks[r].next_step() for r in range(W)]
            assert all(len(p) == G // W // M for p in parts)
            assert [i for p in parts for i in ids_of(p)] == order[step * G:(step + 1) * G].tolist()
    plain = BatchStream(Rows(n), G, 4, seed=7, shuffle=False)
    assert [ids_of(plain.next_step()) for _ in range(3)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 0, 1]]


def test_batch_stream_resume_exact_under_any_world_size() -> None:
    n, G = 23, 6
    full = BatchStream(Rows(n), G, 3, seed=1)
    expected = [ids_of(full.next_step()) for _ in range(12)]
    first = BatchStream(Rows(n), G, 3, seed=1)
    for _ in range(5):
        first.next_step()
    state = first.state_dict()
    assert state["step"] == 5 and state["seed"] == 1 and state["global_batch_size"] == G
    state = json.loads(json.dumps(state))  # checkpoints may store it as JSON
    resumed = [BatchStream(Rows(n), G, 1, seed=1, rank=r, world_size=3) for r in range(3)]
    for r in resumed:
        r.load_state_dict(state)
    for step in range(5, 12):
        assert [i for r in resumed for i in ids_of(r.next_step())] == expected[step]
    with pytest.raises(UserError, match="seed"):
        BatchStream(Rows(n), G, 3, seed=2).load_state_dict(state)
    with pytest.raises(UserError, match="global_batch_size"):
        BatchStream(Rows(n), 12, 3, seed=1).load_state_dict(state)


def test_batch_stream_validation() -> None:
    with pytest.raises(UserError, match="global batch size 10 .* world_size 4 x micro batch size 2"):
        BatchStream(Rows(5), 10, 2, seed=0, world_size=4)
    with pytest.raises(UserError, match="rank"):
        BatchStream(Rows(5), 4, 2, seed=0, rank=2, world_size=2)
    with pytest.raises(UserError, match="no examples"):
        BatchStream(Rows(0), 4, 2, seed=0)


def test_batch_stream_on_real_dataset(dataset: Path) -> None:
    data = PretrainData(dataset)
    s = BatchStream(data.train, 8, 4, seed=0)
    batches = s.next_step()
    assert len(batches) == 2 and batches[0].input_ids.shape == (4, 32)
    idx = s.indices(0)[:4]
    for j, i in enumerate(idx):
        row = data.train[int(i)]
        assert batches[0].input_ids[j, :len(row)].tolist() == row.tolist()
        assert int(batches[0].attention_mask[j].sum()) == len(row)


def test_prefetch_gives_the_same_batches_and_resumes() -> None:
    n, G = 17, 4
    plain = BatchStream(Rows(n), G, 2, seed=3)
    expected = [ids_of(plain.next_step()) for _ in range(10)]
    pre = BatchStream(Rows(n), G, 2, seed=3, prefetch=3)
    assert [ids_of(pre.next_step()) for _ in range(6)] == expected[:6]
    state = pre.state_dict()
    assert state["step"] == 6  # the steps built ahead are not counted
    pre.load_state_dict({**state, "step": 2})  # rewinding restarts the thread at the restored step
    assert [ids_of(pre.next_step()) for _ in range(8)] == expected[2:10]
    pre.close()
    other = BatchStream(Rows(n), G, 1, seed=3, rank=1, world_size=2, prefetch=2)
    other.load_state_dict(state)
    assert [i for _ in range(2) for i in ids_of(other.next_step())] == \
        [i for step in expected[6:8] for i in step[2:]]
    other.close()


def test_prefetch_error_reaches_the_consumer_and_a_retry_resumes() -> None:
    class Flaky(Rows):
        fail = True

        def __getitem__(self, i: int) -> np.ndarray:
            if self.fail:
                raise OSError("disk hiccup")
            return super().__getitem__(i)

    rows = Flaky(17)
    s = BatchStream(rows, 4, 2, seed=3, prefetch=2)
    with pytest.raises(OSError, match="hiccup"):
        s.next_step()
    rows.fail = False
    plain = BatchStream(Rows(17), 4, 2, seed=3)
    assert [ids_of(s.next_step()) for _ in range(3)] == [ids_of(plain.next_step()) for _ in range(3)]
    s.close()


def test_in_background_order_errors_and_shutdown() -> None:
    closed = threading.Event()

    def produce(fail_at: int | None):
        try:
            for i in itertools.count():
                if i == fail_at:
                    raise ValueError(f"boom at {i}")
                yield ValueError("a value, not an error") if i == 1 else i
        finally:
            closed.set()

    def threads() -> int:
        return sum(t.name == "electra-background" for t in threading.enumerate())

    before = threads()  # a stream another test left open keeps its thread: count ours only
    it = in_background(produce(3), depth=2)
    assert next(it) == 0 and isinstance(next(it), ValueError) and next(it) == 2
    with pytest.raises(ValueError, match="boom at 3"):
        next(it)
    assert closed.is_set() and threads() == before
    # A consumer that stops early closes the producer (in its own thread) and the thread ends.
    closed.clear()
    it = in_background(produce(None), depth=2)
    assert next(it) == 0 and threads() == before + 1
    it.close()
    assert closed.is_set() and threads() == before
    assert list(in_background(iter(range(5)), depth=1)) == [0, 1, 2, 3, 4]


def test_transform_runs_on_every_micro_batch_also_in_the_prefetch_thread() -> None:
    seen_threads = set()

    def tag(b):
        import threading
        seen_threads.add(threading.current_thread().name)
        return ("tagged", b)

    plain = BatchStream(Rows(17), 4, 2, seed=3)
    expected = [ids_of(plain.next_step()) for _ in range(5)]
    for prefetch in (0, 2):
        s = BatchStream(Rows(17), 4, 2, seed=3, prefetch=prefetch, transform=tag)
        got = [s.next_step() for _ in range(5)]
        assert all(len(step) == 2 and all(t == "tagged" for t, _ in step) for step in got)
        assert [ids_of([b for _, b in step]) for step in got] == expected
        s.close()
    assert len(seen_threads) == 2  # the main thread without prefetch, the prefetch thread with it
