"""What `electra prepare` reports about a dataset it built: the counts, the draws against their settings, speed."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from electra.data.tokenizer import MAX_CHARS_PER_WORD


def unk_share(counts: dict[str, Any]) -> float | None:
    """The share of the corpus's word pieces that came out as [UNK] (None: shards of a version that did not count)."""
    return counts["unk_tokens"] / max(1, counts["tokens_encoded"]) if "unk_tokens" in counts else None


def unk_hint(counts: dict[str, Any], lowercase: bool, vocab: Iterable[str]) -> str:
    """Why so many [UNK]s: words too long to split (text without spaces), casing, or a vocabulary for other text."""
    long = counts.get("unk_long_words", 0) / max(1, counts["unk_tokens"])
    if long > 0.5:
        return (f"{100 * long:.0f}% of them are single words over {MAX_CHARS_PER_WORD} characters, which WordPiece "
                "never splits: text written without spaces (Thai, Lao, Khmer, Burmese, Japanese) must be cut into "
                "words (a word segmenter: PyThaiNLP, MeCab, ...) before `electra vocab` and `electra prepare`")
    cased = any(t != t.lower() for t in vocab if not (t.startswith("[") and t.endswith("]")))
    if not lowercase and not cased:
        return "the vocabulary is uncased: drop --no-lowercase"
    return "the vocabulary does not fit this text (another language or casing?); `electra vocab` trains one on it"


def dedup_flags(settings: dict[str, Any]) -> str:
    """The duplicate options a dataset was prepared with, as typed: "--dedup", "--near-dup 0.8", or both."""
    return " ".join([*(["--dedup"] if settings.get("dedup") else []),
                     *([f"--near-dup {settings['near_dup']:g}"] if settings.get("near_dup") else [])])


def summary(meta: dict[str, Any], seconds: float | None = None) -> str:
    c = meta["counts"]
    tr, va = c["train"], c["valid"]
    n = max(1, tr["examples"])
    lines = [(f"train: {tr['examples']} examples, {tr['tokens']} tokens; valid: {va['examples']} examples, "
              f"{va['tokens']} tokens"),
             (f"documents: {c['documents']}, lines: {c['lines']}, raw bytes: {c['bytes_read']}, "
              f"replaced bytes: {c['replaced_bytes']}, split long lines: {c['split_lines']}, "
              f"bad JSON records: {c['bad_records']}"
              + (f", [UNK] word pieces: {100 * unk:.2f}%" if (unk := unk_share(c)) is not None else "")
              + (f", repeated documents left out ({dedup_flags(meta['settings'])}): {c['duplicate_documents']}"
                 if "duplicate_documents" in c else "")),
             (f"single-segment draws: {100 * tr['single_segment_draws'] / n:.2f}% "
              f"(setting {100 * meta['settings']['single_segment_prob']:.1f}%), "
              f"short-target draws: {100 * tr['short_target_draws'] / n:.2f}% "
              f"(setting {100 * meta['settings']['short_seq_prob']:.1f}%), "
              f"examples without a B segment: {100 * tr['one_segment'] / n:.2f}%")]
    if seconds is not None:
        lines.append(f"time: {seconds:.1f}s, {c['bytes_read'] / 1e6 / max(seconds, 1e-9):.2f} MB/s raw text, "
                     f"{c['tokens_encoded'] / max(seconds, 1e-9) / 1e6:.3f} M tokens/s tokenized "
                     f"({c['tokens_encoded']} word pieces, {tr['tokens'] + va['tokens']} kept in examples)")
    return "\n".join(lines)
