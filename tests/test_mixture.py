"""Mixing datasets (`--data A B --data-weights`): each source takes its share of every block of rows exactly, walks
its own epochs, and the order equals a step-by-step reference, whatever positions, ranks or resumes ask for it;
a run trains on a mix, resumes exactly, records it and refuses to resume on another mix.

    python -m pytest tests/test_mixture.py -q
"""
from __future__ import annotations

import json
import signal

import numpy as np
import pytest
import torch
from conftest import tiny_overrides
from data_helpers import ENGLISH_WORDS, write_docs
from test_data_dataset import SP, ids_of
from test_pretrain import final_weights, run_cli

from electra.cli import main
from electra.data.dataset import BatchStream, PretrainData
from electra.data.mixture import BLOCK, MIX, Mixture, block_counts
from electra.errors import UserError


class Rows:
    """A stand-in training split: row i is [CLS] base+i [SEP], so a batch shows which source and row it holds."""

    seq_len, special = 4, SP

    def __init__(self, n: int, base: int) -> None:
        self.n, self.base = n, base

    def __len__(self) -> int:
        return self.n

    def take(self, indices) -> list[np.ndarray]:
        assert all(0 <= int(i) < self.n for i in indices)
        return [np.array([SP.cls, self.base + int(i), SP.sep]) for i in indices]

    def token_counts(self, vocab_size: int) -> np.ndarray:
        counts = np.zeros(vocab_size, np.int64)
        counts[self.base] = self.n  # as if every row held token `base` once
        return counts


def reference(sizes: list[int], weights: list[float], seed: int, positions: int) -> list[int]:
    """The documented order, one position after another: the block's source order says which source; that source's
    counter says which entry of its endless epochs (each a permutation drawn from [seed, source, epoch])."""
    per_block, counters, out, offsets = block_counts(weights), [0] * len(sizes), [], np.cumsum([0, *sizes])
    for p in range(positions):
        if p % BLOCK == 0:
            order = np.random.default_rng([seed, MIX, p // BLOCK]).permutation(np.repeat(np.arange(len(sizes)), per_block))
        s = int(order[p % BLOCK])
        j, counters[s] = counters[s], counters[s] + 1
        out.append(int(offsets[s] + np.random.default_rng([seed, s, j // sizes[s]]).permutation(sizes[s])[j % sizes[s]]))
    return out


def test_block_counts_share_the_block_by_largest_remainder():
    assert block_counts([3, 1]).tolist() == [49152, 16384]
    assert block_counts([1, 1, 1]).tolist() == [21846, 21845, 21845]  # the remainders' order breaks the tie
    assert block_counts([1, 2], block=10).tolist() == [3, 7]  # 3.33 -> 3, 6.67 -> 7


def test_rows_equal_the_step_by_step_reference_and_each_source_walks_its_epochs():
    sizes, weights = [7, 3, 5], [1.0, 2.0, 1.5]
    mix = Mixture([Rows(n, 0) for n in sizes], weights)
    P = BLOCK + 500  # into a second block
    got = mix.rows(np.arange(P), seed=3)
    assert got.tolist()[:3000] == reference(sizes, weights, 3, 3000)
    # any positions, in any order, give the same rows (a pure function of the position)
    pick = np.random.default_rng(0).permutation(P)[:4000]
    assert mix.rows(pick, seed=3).tolist() == got[pick].tolist()
    assert got[BLOCK:].tolist() == reference(sizes, weights, 3, P)[BLOCK:]
    offsets = np.cumsum([0, *sizes])
    for s, n in enumerate(sizes):
        mine = got[(got >= offsets[s]) & (got < offsets[s + 1])] - offsets[s]
        share = len(mine[: (len(mine) // n) * n])
        assert abs(len(mine) / P - weights[s] / sum(weights)) < 1e-3  # its share of the rows
        for e in range(share // n):  # each epoch of the source holds each of its rows once
            assert sorted(mine[e * n:(e + 1) * n].tolist()) == list(range(n))
    counts = np.bincount(np.searchsorted(offsets, got[:BLOCK], side="right") - 1)
    assert counts.tolist() == block_counts(weights).tolist()  # exactly the shares within a block


def test_a_mixed_stream_resumes_under_any_world_size_and_refuses_another_mix():
    make = lambda: Mixture([Rows(11, 100), Rows(4, 200)], [1, 3])
    full = BatchStream(make(), 6, 3, seed=1)
    expected = [ids_of(full.next_step()) for _ in range(10)]
    assert sum(v >= 100 for step in expected for v in step) > 40  # mostly the second source: weight 3 of 4
    first = BatchStream(make(), 6, 3, seed=1)
    for _ in range(4):
        first.next_step()
    state = json.loads(json.dumps(first.state_dict()))
    assert state["mixture"] == {"sizes": [11, 4], "weights": [0.25, 0.75]}
    resumed = [BatchStream(make(), 6, 1, seed=1, rank=r, world_size=3) for r in range(3)]
    for r in resumed:
        r.load_state_dict(state)
    for step in range(4, 10):
        assert [i for r in resumed for i in ids_of(r.next_step())] == expected[step]
    with pytest.raises(UserError, match="a mixture of 11 rows at 0.25, 4 rows at 0.75 but this run is a mixture of "
                                        "11 rows at 0.5"):
        BatchStream(Mixture([Rows(11, 100), Rows(4, 200)], [1, 1]), 6, 3, seed=1).load_state_dict(state)
    with pytest.raises(UserError, match="but this run is one dataset"):
        BatchStream(Rows(15, 100), 6, 3, seed=1).load_state_dict(state)


def test_mixture_errors_and_the_unigram_counts_per_drawn_row():
    with pytest.raises(UserError, match="positive"):
        Mixture([Rows(3, 0), Rows(3, 10)], [1, 0])
    with pytest.raises(UserError, match="b has no training examples"):
        Mixture([Rows(3, 0), Rows(0, 10)], [1, 1], ["a", "b"])
    with pytest.raises(UserError, match="under 1/65536"):
        Mixture([Rows(3, 0), Rows(3, 10)], [1, 1e-6])
    mix = Mixture([Rows(4, 5), Rows(10, 6)], [3, 1])
    counts = mix.token_counts(8)  # per drawn row: 3/4 of rows from the first source (token 5), 1/4 the second
    assert counts[5] == pytest.approx(0.75) and counts[6] == pytest.approx(0.25) and counts.sum() == pytest.approx(1)


@pytest.fixture(scope="module")
def second_dataset(tiny_dataset, tmp_path_factory):
    """Other text, prepared with the tiny dataset's vocabulary."""
    root = tmp_path_factory.mktemp("second")
    write_docs(root / "other.txt", 60, seed=7, lines=(3, 12), words=ENGLISH_WORDS[:40], sentence_len=(4, 20))
    assert main(["prepare", str(root / "other.txt"), "--vocab", str(tiny_dataset / "vocab.txt"), "--seq-len", "32",
                 "--out", str(root / "ds"), "--workers", "1", "--quiet"]) == 0
    return root / "ds"


def test_a_mixed_run_trains_resumes_exactly_and_says_so(tiny_dataset, second_dataset, tmp_path, capsys):
    from electra.hf_export import export

    mix = ["--data", str(tiny_dataset), str(second_dataset), "--data-weights", "1,3", "--no-tensorboard",
           *tiny_overrides(max_steps=4)]
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert main(["pretrain", *mix, "--out", str(straight)]) == 0
    assert "train (mixed: ds 25%, ds 75%)" in capsys.readouterr().out
    r = run_cli(["pretrain", *mix, "--out", str(split)], env={"ELECTRA_FAULT_AT_STEP": "3"})
    assert r.returncode == -signal.SIGKILL, r.stderr  # killed after step 3: resumes from the step-2 checkpoint
    assert main(["pretrain", *mix, "--out", str(split)]) == 0
    a, b = final_weights(straight), final_weights(split)
    assert all(torch.equal(a[k], b[k]) for k in a)  # the resumed mix read exactly what the straight one did
    tok = json.loads((straight / "tokenizer.json").read_text())
    assert [m["share"] for m in tok["mixture"]] == [0.25, 0.75]
    # another mix, or one dataset, cannot resume it
    with pytest.raises(UserError, match="use the same --data datasets and --data-weights"):
        from electra.pretrain import train
        from electra.run_setup import parse_args
        train(*parse_args(["--data", str(tiny_dataset), "--out", str(split), "--max-steps", "6"]))
    export(straight, tmp_path / "hf")
    card = (tmp_path / "hf" / "discriminator" / "README.md").read_text()
    assert "| data | a mix of `ds` (25%), `ds` (75%) of the training rows" in card
    # the mix differs from either dataset alone
    alone = tmp_path / "alone"
    assert main(["pretrain", "--data", str(tiny_dataset), "--out", str(alone), "--no-tensorboard",
                 *tiny_overrides(max_steps=4)]) == 0
    assert not torch.equal(final_weights(alone)["discriminator.embeddings.word.weight"],
                           a["discriminator.embeddings.word.weight"])


def test_mixing_refuses_datasets_that_do_not_match(tiny_dataset, tmp_path):
    other = tmp_path / "other"
    write_docs(tmp_path / "t.txt", 40, seed=3, words=ENGLISH_WORDS, capitalize=True)
    assert main(["vocab", str(tmp_path / "t.txt"), "--vocab-size", "150", "--out", str(tmp_path / "v")]) == 0
    assert main(["prepare", str(tmp_path / "t.txt"), "--vocab", str(tmp_path / "v" / "vocab.txt"), "--seq-len", "32",
                 "--out", str(other), "--workers", "1", "--quiet"]) == 0
    from electra.run_setup import parse_args, training_rows
    args, _ = parse_args(["--data", str(tiny_dataset), str(other)])
    with pytest.raises(UserError, match=f"--data {other} was prepared with another vocabulary than --data"):
        training_rows(args, [PretrainData(p) for p in args.data])
    for given, message in ((["--data-weights", "1,2,3"], "--data-weights gives 3 weights for 2 --data datasets"),
                           (["--data-weights", "sizes^x"], "sizes\\^A takes a number")):
        args, _ = parse_args(["--data", str(tiny_dataset), str(other), *given])
        with pytest.raises(UserError, match=message):  # before the datasets are compared
            training_rows(args, [PretrainData(p) for p in args.data])
    args, _ = parse_args(["--data", str(tiny_dataset), "--data-weights", "1"])
    with pytest.raises(UserError, match="needs two or more --data datasets, got 1"):
        training_rows(args, [PretrainData(tiny_dataset)])


def test_weights_default_to_the_sizes_or_a_power_of_them(tiny_dataset, second_dataset):
    from electra.run_setup import parse_args, training_rows
    sizes = [len(PretrainData(p).train) for p in (tiny_dataset, second_dataset)]
    for given, power in ((None, 1.0), ("sizes^0.5", 0.5), ("sizes^0", 0.0)):
        args, _ = parse_args(["--data", str(tiny_dataset), str(second_dataset)]
                             + (["--data-weights", given] if given else []))
        mix = training_rows(args, [PretrainData(p) for p in args.data])
        want = [n ** power / sum(m ** power for m in sizes) for n in sizes]
        assert mix.weights == pytest.approx(want), given
