"""`electra predict`: run a model that `electra finetune` saved on new text.

    electra predict --model OUT/model "a gripping , funny film" "a dull one"     one example per argument
    electra predict --model OUT/model "a man plays ||| the man plays guitar"     a pair: TEXT A ||| TEXT B
    electra predict --model OUT --input rows.jsonl --output predictions.jsonl [--top-k 2]
    some_command | electra predict --model OUT/model --input -                   stdin (JSON Lines or lines)

--model is the OUT/model folder (or OUT) of `electra finetune`: finetune.json, model.safetensors, vocab.txt.
One JSON line per input, in input order (with the input's "id" when it had one): classification {"label",
"score", "probs"}, regression {"score"}, tagging {"tokens", "tags", "entities"}, question answering {"answer",
"start", "end", "score"}. Inputs are tokenized, truncated, windowed and batched as `electra finetune` evaluated
its dev set (its glue / tagging / squad encoders with the saved config, train.predict, squad.answer_spans),
so a dev row gets the prediction its evaluation scored. See docs/finetune.md, "Using a fine-tuned model".
"""
from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from electra.checkpoint import task_models
from electra.errors import ArgumentParser, UserError
from electra.finetune.config import FinetuneConfig
from electra.finetune.predict_inputs import FORMATS, PAIR, Row, read_rows, words
from electra.finetune.tagging import chunk_tags, cut_words_note

HEADS = ("classification", "regression", "tagging", "qa_simple", "qa_electra")
DEFAULT_MAX_LEN = {"tagging": 256, "qa_simple": 512, "qa_electra": 512}  # else 128 (GLUE's): files from before "config"


def find_model_dir(path: Path) -> Path:
    """The folder holding finetune.json: `path` or path/model; anything else is named in a one-line error."""
    hint = "pass the OUT/model folder that `electra finetune ... --out OUT` wrote"
    if not path.exists():
        raise UserError(f"model folder {path} does not exist; {hint}")
    for cand in (path, path / "model"):
        if (cand / "finetune.json").is_file():
            return cand
    several = task_models(path)
    if several:
        raise UserError(f"{path} holds the models of several tasks ({', '.join(map(str, several[:4]))}); pass one")
    from electra.hf import is_hf_folder
    if (path / "checkpoints").is_dir() or (path / "state.json").is_file():
        what = "an `electra pretrain` run (or checkpoint) folder"
    elif is_hf_folder(path, any_model_type=True):
        what = "a Hugging Face model folder"
    else:
        raise UserError(f"{path} {'holds no finetune.json' if path.is_dir() else 'is a file'}; {hint}")
    raise UserError(f"{path} is {what}, not a fine-tuned model: fine-tune it (`electra finetune --model {path} "
                    f"--out OUT ...`) and pass OUT/model")


class Finetuned:
    """A fine-tuned model: finetune.json read and checked on construction, the weights by `load`."""

    def __init__(self, model_dir: Path):
        from electra.config import ModelConfig
        from electra.finetune.train import read_finetune_meta

        self.dir, where = model_dir, model_dir / "finetune.json"
        meta = read_finetune_meta(model_dir)
        if not isinstance(meta, dict) or meta.get("head") not in HEADS or not isinstance(meta.get("model_config"), dict):
            raise UserError(f"{where} has no known 'head' ({', '.join(HEADS)}) or no 'model_config'; it was not "
                            f"written by `electra finetune`")
        self.meta, self.kind, self.task = meta, meta["head"], meta.get("task", "?")
        try:
            self.mcfg = ModelConfig(**meta["model_config"])
            self.cfg = self._config(meta.get("config"))
        except (TypeError, ValueError, UserError) as e:
            raise UserError(f"{where}: bad model_config or config ({e})") from None
        self.labels = meta.get("labels") or []
        self.segments = meta.get("segments")  # None (older files): each row gives one or two texts
        target = meta.get("target_range", [0.0, 5.0])  # older files: STS-B's 0-5 scale
        labels_ok = self.kind not in ("classification", "tagging") or (
            isinstance(self.labels, list) and self.labels and all(isinstance(x, str) for x in self.labels))
        range_ok = isinstance(target, list) and len(target) == 2 and all(
            isinstance(x, int | float) for x in target) and target[0] < target[1]
        if not (labels_ok and range_ok and self.segments in (None, 1, 2)):
            raise UserError(f"{where}: bad 'labels' (a list of strings), 'segments' (1 or 2) or 'target_range' "
                            f"([lo, hi]); it was not written by `electra finetune`")
        self.target_range = (float(target[0]), float(target[1]))
        # written by the tagging job since the `tag` task; before it every tag set was chunk tags, with "O" for
        # a word that has no piece in the window
        self.chunked = meta.get("chunk_tags", self.kind == "tagging" and chunk_tags(set(self.labels)))
        self.fallback = meta.get("fallback_tag", "O")
        self.version2 = self.task == "squad2"  # SQuAD 2.0: "" when the model finds no answer
        self.text_columns = meta.get("text_columns") or []  # your own data's column names, also read from JSON Lines

    def _config(self, saved: Any) -> FinetuneConfig:
        """The resolved recipe finetune.json saved, or (older files) the task's defaults; capped at the positions."""
        if isinstance(saved, dict):
            known = {f.name for f in dataclasses.fields(FinetuneConfig)}
            cfg = FinetuneConfig(**{k: v for k, v in saved.items() if k in known})
        else:
            cfg = FinetuneConfig(qa_head="electra" if self.kind == "qa_electra" else "simple")
        seq = cfg.max_seq_len or DEFAULT_MAX_LEN.get(self.kind, 128)
        return dataclasses.replace(cfg, max_seq_len=min(seq, self.mcfg.max_position_embeddings))

    def load(self, device: torch.device) -> None:
        """Weights (safetensors: no pickle), checked name by name and shape by shape against finetune.json."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        from electra.data.tokenizer import SpecialIds, load_tokenizer
        from electra.finetune.heads import FinetuneModel, build_head
        from electra.model import Encoder

        file = self.dir / "model.safetensors"
        try:
            weights = load_file(str(file))
        except (SafetensorError, OSError, ValueError) as e:
            raise UserError(f"{file} is missing or damaged ({str(e).splitlines()[0]}); re-run `electra finetune`") from None
        head = build_head(self.kind, self.mcfg.hidden_size, len(self.labels), self.cfg.head_dropout,
                          self.target_range, self.cfg.n_best, self.version2, dense=self.cfg.cls_head == "hf")
        model = FinetuneModel(Encoder(self.mcfg), head)
        expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        missing, extra = sorted(expected.keys() - weights.keys()), sorted(weights.keys() - expected.keys())
        bad = [k for k in expected if k in weights and tuple(weights[k].shape) != expected[k]]
        if missing or extra or bad:
            found = (f"tensor {bad[0]} has shape {tuple(weights[bad[0]].shape)}, finetune.json implies "
                     f"{expected[bad[0]]}" if bad else f"missing {missing[:3]}, unexpected {extra[:3]}")
            raise UserError(f"{file} does not match the {self.kind} model finetune.json describes ({found}); the "
                            f"two files come from different runs: fine-tune again or restore the pair")
        model.load_state_dict(weights)
        self.model, self.device = model.to(device).eval(), device
        vocab = self.dir / "vocab.txt"
        self.tokenizer = load_tokenizer(vocab, lowercase=bool(self.meta.get("lowercase", True)),
                                        strip_accents=self.meta.get("strip_accents"))
        self.special = SpecialIds.from_vocab(vocab)

    # ---------------------------------------------------------------------------------------------------
    # inputs

    def texts(self, parts: list[str], where: str, how: str) -> Any:
        """One example's value from its text(s); `how` says how this source writes a pair (for errors)."""
        if self.kind.startswith("qa"):
            if len(parts) != 2 or not all(p.strip() for p in parts):
                raise UserError(f"{where}: a question-answering model takes a question and its context ({how})")
            return tuple(parts)
        want = self.segments or min(len(parts), 2)
        if len(parts) != want:
            takes = f"a pair of texts per example ({how})" if want == 2 else "one text per example"
            raise UserError(f"{where}: the {self.task} model takes {takes}, this one has {len(parts)}")
        return tuple(parts)

    def from_line(self, line: str, where: str, how: str) -> Any:
        if self.kind == "tagging":
            return words(line)
        sep = "\t" if "\t" in line else PAIR
        return self.texts([p.strip() for p in line.split(sep)], where, how)

    def from_json(self, obj: Any, where: str) -> Any:
        """One example from a JSON object or a CSV / TSV row (names matched as custom.column: case only if need be)."""
        from electra.finetune.custom import column

        own = self.text_columns[:2] or ["text", "text_pair"]
        how = "'question' and 'context'" if self.kind.startswith("qa") else " and ".join(map(repr, own))
        if not isinstance(obj, dict):
            raise UserError(f"{where}: expected a JSON object with {how}, got {type(obj).__name__}")

        def get(*names: str) -> str | None:
            found = next((c for c in (column(obj, n) for n in names) if c and obj[c] is not None), None)
            if found is not None and not isinstance(obj[found], str):
                raise UserError(f"{where}: {found!r} is {type(obj[found]).__name__}, expected a string")
            return None if found is None else obj[found]
        if self.kind == "tagging":
            tokens = obj.get("tokens")
            if tokens is not None and not (isinstance(tokens, list) and all(isinstance(t, str) for t in tokens)):
                raise UserError(f"{where}: 'tokens' must be a list of strings")
            text = get("text", "sentence")
            if tokens is None and text is None:
                raise UserError(f"{where}: expected 'tokens' (a list of words) or 'text'")
            return list(tokens) if tokens is not None else words(text)
        if self.kind.startswith("qa"):
            return self.texts([get("question") or "", get("context") or ""], where, how)
        cols = self.text_columns + [None, None]
        first, second = get(*filter(None, (cols[0], "text", "sentence", "sentence1", "premise", "question"))), \
            get(*filter(None, (cols[1], "text_pair", "sentence2", "hypothesis")))
        if first is None:
            raise UserError(f"{where}: no text; expected {how} (it has {list(obj)[:8]})")
        return self.texts([first] + ([second] if second is not None else []), where, how)

    # ---------------------------------------------------------------------------------------------------
    # predictions

    def predict(self, rows: list[Row], batch_size: int, top_k: int = 0) -> list[dict[str, Any]]:
        """One result dict per row, in order."""
        from electra.finetune.train import predict

        def run(feats: list[dict[str, Any]]) -> list[Any]:
            return predict(self.model, feats, self.special.pad, self.device, batch_size, self.cfg.precision)
        args = (self.tokenizer, self.special.cls, self.special.sep)
        if self.kind == "tagging":
            results = self._tagging(rows, run, args)
        elif self.kind.startswith("qa"):
            results = self._qa(rows, run, args)
        else:
            from electra.finetune.glue import Example, encode_examples
            feats: list[Any] = [None] * len(rows)
            for n in (1, 2):  # encode_examples takes rows of one shape: single texts, then pairs
                idx = [i for i, r in enumerate(rows) if len(r.value) == n]
                encoded = encode_examples([Example(rows[i].value, None, "") for i in idx], *args, self.cfg.max_seq_len)
                for i, f in zip(idx, encoded):
                    feats[i] = f
            results = [self._sentence(out, top_k) for out in run(feats)]
        return [({"id": r.id} if r.id is not None else {}) | res for r, res in zip(rows, results)]

    def _sentence(self, out: Any, top_k: int) -> dict[str, Any]:
        if self.kind == "regression":
            return {"score": float(out)}  # the head maps it back onto target_range
        logits = np.asarray(out, dtype=np.float64)
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        best = int(np.argmax(logits))  # the first of equal maxima, as the GLUE evaluation's argmax
        shown = np.argsort(-probs, kind="stable")[:top_k] if top_k else range(len(probs))
        return {"label": self.labels[best], "score": float(probs[best]),
                "probs": {self.labels[j]: float(probs[j]) for j in shown}}

    def _tagging(self, rows: list[Row], run: Any, args: tuple) -> list[dict[str, Any]]:
        from electra.finetune.metrics import spans
        from electra.finetune.tagging import Sentence, encode_sentences

        sents = [Sentence(list(r.value), ["O"] * len(r.value)) for r in rows]
        feats = encode_sentences(sents, *args, self.cfg.max_seq_len, {})
        results = []
        for r, f, out in zip(rows, feats, run(feats)):
            # as the evaluation: a word cut off by max_seq_len (or without a piece) gets the fallback tag
            tags = [self.labels[out[p]] if p >= 0 else self.fallback for p in f["word_pos"]]
            res: dict[str, Any] = {"tokens": list(r.value), "tags": tags}
            if self.chunked:  # word indices, end exclusive: tokens[start:end] is the entity
                res["entities"] = [{"text": " ".join(r.value[s:e + 1]), "type": t, "start": s, "end": e + 1}
                                   for s, e, t in sorted(spans(tags))]
            results.append(res)
        note = cut_words_note([r.where for r in rows], [f["word_pos"] for f in feats], self.cfg.max_seq_len,
                              self.fallback)
        if note:
            print(f"electra predict: note: {note}", file=sys.stderr)
        return results

    def _qa(self, rows: list[Row], run: Any, args: tuple) -> list[dict[str, Any]]:
        from electra.finetune import squad

        exs = [squad.QAExample(str(i), q, c, [], False) for i, (q, c) in enumerate(r.value for r in rows)]
        contexts = squad.encode_contexts(exs, args[0])
        feats = squad.build_features(exs, *args, self.cfg, training=False, contexts=contexts)
        outs = run(feats)
        answers = squad.answer_spans(exs, [c.offsets for c in contexts], feats, outs, self.cfg, self.version2)
        return [{"answer": a.text, "start": a.start, "end": a.end, "score": a.score} if a.text else {"answer": ""}
                for a in answers]


def main(argv: list[str]) -> int:
    p = ArgumentParser(prog="electra predict", description=__doc__.split("\n")[0])
    p.add_argument("--model", type=Path, required=True, help="`electra finetune`'s OUT/model folder (or OUT)")
    p.add_argument("text", nargs="*", help=f"examples to predict, one per argument (a pair: 'A {PAIR} B')")
    p.add_argument("--input", help="a file (.jsonl, .csv / .tsv with a header, .parquet, .txt: one example per line, "
                   ".conll, SQuAD .json), or - for stdin")
    p.add_argument("--format", default="auto", choices=FORMATS,
                   help="how --input is read (auto: by its suffix; otherwise JSON Lines when it starts with '{', "
                        "CoNLL for a tagging model when it looks like it, else lines)")
    p.add_argument("--output", type=Path, help="write the JSON lines here (atomically) instead of to stdout")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--batch-size", type=int, help="examples per forward pass (default: the saved eval_batch_size)")
    p.add_argument("--top-k", type=int, help="classification: the K most probable labels in 'probs'")
    args = p.parse_args(argv)
    if any(n is not None and n < 1 for n in (args.batch_size, args.top_k)):
        raise UserError("--batch-size and --top-k must be >= 1")
    out = args.output
    if out is not None and (out.is_dir() or not out.parent.is_dir()):
        raise UserError(f"--output {out}: {'is a folder' if out.is_dir() else 'its folder does not exist'}; "
                        f"give a file path")
    if out is not None and args.input not in (None, "-") and out.resolve() == Path(args.input).resolve():
        raise UserError(f"--output {out} is the --input file; write the predictions elsewhere")
    model = Finetuned(find_model_dir(args.model))
    if args.top_k and model.kind != "classification":
        raise UserError(f"--top-k is for classification models; this one is {model.kind} (task {model.task})")
    rows = read_rows(args, model)  # every input checked before the weights are loaded
    from electra.dist import pick_device
    model.load(pick_device(args.device))
    results = model.predict(rows, args.batch_size or model.cfg.eval_batch_size, args.top_k or 0)
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in results)
    if out is None:
        sys.stdout.write(text)
    else:
        from electra.checkpoint import atomic_write_text  # a temporary file renamed over --output
        atomic_write_text(out, text)
        print(f"electra predict: {len(results)} predictions written to {out}", file=sys.stderr)
    return 0
