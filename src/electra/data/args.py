"""Command-line arguments shared by `electra vocab` and `electra prepare`.

Both read a corpus the same way and must normalise its text the same way (a vocab trained cased
only fits a cased dataset), so they declare these options in one place.
"""
from __future__ import annotations

import argparse

from electra.data.inputs import FORMATS


def add_corpus_arg(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("corpus", nargs="+" if required else "*",
                   help="text, JSON Lines, WikiExtractor or Parquet files (plain, gzip, bzip2, xz or zstd), folders "
                        "or glob patterns")


def add_text_args(p: argparse.ArgumentParser) -> None:
    """How the corpus is read and normalised: --format (read back with `corpus_format`), --text-field,
    --no-lowercase (dest `lowercase`) and --[no-]strip-accents (dest `strip_accents`: None, True or False)."""
    p.add_argument("--format", choices=("auto",) + FORMATS, default="auto", help="force one input format")
    p.add_argument("--text-field", default="text", help="JSON Lines field (Parquet column) holding the text")
    p.add_argument("--no-lowercase", dest="lowercase", action="store_false", help="keep case (cased vocab)")
    acc = p.add_mutually_exclusive_group()
    acc.add_argument("--strip-accents", dest="strip_accents", action="store_true", default=None,
                     help="default: strip accents exactly when lower-casing (as ELECTRA)")
    acc.add_argument("--no-strip-accents", dest="strip_accents", action="store_false")


def corpus_format(a: argparse.Namespace) -> str | None:
    """The forced input format, or None to detect it per file."""
    return None if a.format == "auto" else a.format
