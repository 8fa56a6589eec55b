"""The command line: help for every subcommand, the demo pipeline's steps end to end at toy size
(vocab -> prepare -> pretrain -> detect -> export), and `python -m electra`.

    python -m pytest tests/test_cli.py -q
"""
import os
import subprocess
import sys

import pytest
import torch
from conftest import tiny_overrides

from electra.cli import COMMANDS, main


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    assert "usage" in capsys.readouterr().out


def test_top_level_help_and_unknown_command(capsys):
    assert main([]) == 0 and "pretrain" in capsys.readouterr().out
    assert main(["train"]) == 2 and "unknown command" in capsys.readouterr().err
    assert main(["pretrian", "--preset", "tiny"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'pretrian'; did you mean 'pretrain'?" in err and err.count("\n") == 1


def test_sigterm_runs_the_commands_cleanups_and_ctrl_c_while_loading_is_one_line(monkeypatch, capsys):
    """A SIGTERM (kill, a scheduler's limit) mid-command unwinds like Ctrl-C: `finally` blocks (an export's
    staging folder) run; the handler is put back afterwards. Ctrl-C while the command's module imports torch."""
    import os
    import signal
    import time

    import electra.status
    cleaned = []

    def killed(argv):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises at the next bytecode
        finally:
            cleaned.append(True)

    monkeypatch.setattr(electra.status, "main", killed)
    before = signal.getsignal(signal.SIGTERM)
    assert main(["status", "run"]) == 128 + signal.SIGTERM and cleaned == [True]
    assert capsys.readouterr().err == "electra status: terminated (SIGTERM)\n"
    assert signal.getsignal(signal.SIGTERM) is before

    def interrupted(name):
        raise KeyboardInterrupt
    monkeypatch.setattr("electra.cli.importlib.import_module", interrupted)
    assert main(["status", "run"]) == 130 and capsys.readouterr().err == "electra status: interrupted\n"


def test_python_dash_m_runs_the_same_cli():
    r = subprocess.run([sys.executable, "-m", "electra", "--help"], capture_output=True, text=True, timeout=60,
                       check=False)
    assert r.returncode == 0 and "finetune" in r.stdout


def test_detect_marks_tokens_with_probabilities(tiny_dataset, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["pretrain", "--data", str(tiny_dataset), "--out", str(run), *tiny_overrides(max_steps=2, eval_every=0)]) == 0
    capsys.readouterr()
    assert main(["detect", "--model", str(run), "--threshold", "0.0", "the city was built", "a river"]) == 0
    out = capsys.readouterr().out.strip().split("\n\n")
    assert len(out) == 2
    first = out[0].splitlines()
    assert first[0].startswith("[") and "]" in first[0]  # threshold 0 marks every token
    probs = [float(line.split()[1]) for line in first[1:]]
    assert len(probs) >= 4 and all(0.0 <= p <= 1.0 for p in probs)
    # the probabilities are transformers' ElectraForPreTraining on the exported model (batched, padded rows)
    tf = pytest.importorskip("transformers")
    from electra.detect import Detector
    assert main(["export", str(run), str(tmp_path / "hf")]) == 0
    hf = tf.ElectraForPreTraining.from_pretrained(tmp_path / "hf" / "discriminator").eval()
    tok = tf.AutoTokenizer.from_pretrained(tmp_path / "hf" / "discriminator")
    texts = ["the city was built", "a river"]
    enc = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        theirs = torch.sigmoid(hf(**enc).logits)
    for i, det in enumerate(Detector(run)(texts)):
        n = len(det.probs)
        assert det.tokens == tok.convert_ids_to_tokens(enc.input_ids[i, 1:n + 1].tolist())
        assert torch.allclose(torch.tensor(det.probs), theirs[i, 1:n + 1], atol=1e-5), (det.probs, theirs[i])
    # the printed values are those probabilities (3 decimals), and --threshold marks exactly p >= t
    mine = Detector(run)(texts)[0]
    assert probs == pytest.approx(mine.probs, abs=6e-4)
    t = sorted(mine.probs)[len(mine.probs) // 2]
    capsys.readouterr()
    assert main(["detect", "--model", str(run), "--threshold", repr(t), "the city was built"]) == 0
    marked = capsys.readouterr().out.splitlines()[0]
    assert marked.count("[") == sum(p >= t for p in mine.probs), (marked, mine.probs, t)
    assert main(["detect", "--model", str(tmp_path / "missing"), "x"]) == 2
    assert "does not exist" in capsys.readouterr().err
    for bad, needle in [(["--threshold", "nan", "a b"], "not a probability"), (["  "], "empty"),
                        (["--device", "cuda:7", "a b"], "no CUDA device")]:
        if "cuda:7" in bad and torch.cuda.is_available():
            continue
        assert main(["detect", "--model", str(run), *bad]) == 2
        err = capsys.readouterr().err
        assert needle in err and err.count("\n") == 1, err
    # bytes that are not UTF-8 reach Python as lone surrogates; a text longer than the model is cut, with a note
    assert main(["detect", "--model", str(run), "caf\udce9 city", " ".join(["city"] * 600)]) == 0
    captured = capsys.readouterr()
    assert "cut to the model's" in captured.err and "city" in captured.out
    # `electra detect ... | head`: the reader leaves early (here before the first line); no traceback, whether
    # stdout is buffered (a pipe's default) or not (PYTHONUNBUFFERED, as some CI machines set)
    for unbuffered in (False, True):
        env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"} | (
            {"PYTHONUNBUFFERED": "1"} if unbuffered else {})
        proc = subprocess.Popen([sys.executable, "-m", "electra", "detect", "--model", str(run), "the city was built"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        proc.stdout.close()
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=120) == 141 and "Traceback" not in err and "Error" not in err, (unbuffered, err)


def test_an_output_path_that_cannot_be_made_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    corpus = tmp_path / "c.txt"
    corpus.write_text("some words here\n" * 50)
    assert main(["vocab", str(corpus), "--vocab-size", "30", "--out", str(tmp_path / "afile" / "sub")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("electra vocab: error: cannot use") and "afile" in err and err.count("\n") == 1
