"""Presets: the paper's Table 6 (= the original configure_pretraining.py, electra-spec 1.8), the original's debug
mode, and `tiny`, ours for tests and CPU runs. Only the fields that differ from the config defaults (config.py);
`--preset NAME` applies them above the defaults and below a --config file and the command line.
"""
from __future__ import annotations

from typing import Any

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "debug": {  # the original's debug mode (spec 1.1): 3 x 144 on Small's settings, 20 steps of 8 sequences
        "model": dict(hidden_size=144, embedding_size=128, num_layers=3, num_heads=4, intermediate_size=576),
        "objective": dict(generator_hidden_fraction=0.25),
        "train": dict(seq_len=128, global_batch_size=8, max_steps=20, warmup_steps=0, lr=5e-4, log_every=5,
                      eval_every=10, save_every=10),
    },
    # Not in the paper: 4 x 128 for CPUs, trained with Small's batch and learning rate. At batch 32 and lr 1e-3 the
    # held-out AUC sat at 0.55 over 18 M tokens; with these it rose from 0.56 (16 M) to 0.66 (37 M tokens).
    "tiny": {
        "model": dict(hidden_size=128, embedding_size=128, num_layers=4, num_heads=2, intermediate_size=512),
        "objective": dict(generator_hidden_fraction=0.25),
        "train": dict(seq_len=128, global_batch_size=128, max_steps=5000, warmup_steps=1000, lr=5e-4,
                      log_every=25, eval_every=250, save_every=500),
    },
    "small": {  # 12 x 256, 128-d embeddings, 1/4-width generator, 1M steps of 128 x 128
        "model": dict(hidden_size=256, embedding_size=128, num_layers=12, num_heads=4, intermediate_size=1024),
        "objective": dict(generator_hidden_fraction=0.25, mask_prob=0.15),
        "train": dict(seq_len=128, global_batch_size=128, max_steps=1_000_000, warmup_steps=10_000, lr=5e-4),
    },
    "base": {  # 12 x 768, 1/3-width generator, 766K steps of 256 x 512
        "model": dict(hidden_size=768, embedding_size=768, num_layers=12, num_heads=12, intermediate_size=3072),
        "objective": dict(generator_hidden_fraction=1 / 3, mask_prob=0.15),
        "train": dict(seq_len=512, global_batch_size=256, max_steps=766_000, warmup_steps=10_000, lr=2e-4),
    },
    "large": {  # 24 x 1024, 1/4-width generator, 25% masking, 400K steps of 2048 x 512
        "model": dict(hidden_size=1024, embedding_size=1024, num_layers=24, num_heads=16, intermediate_size=4096),
        "objective": dict(generator_hidden_fraction=0.25, mask_prob=0.25),
        "train": dict(seq_len=512, global_batch_size=2048, max_steps=400_000, warmup_steps=10_000, lr=2e-4),
    },
}
