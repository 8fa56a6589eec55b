"""Config: presets from the paper's table, precedence, derived values, and errors that name the field.

    python -m pytest tests/test_config.py -q
"""
import json

import pytest

from electra.config import PRESETS, PretrainConfig, build_config, generator_config, split_overrides
from electra.errors import UserError


def test_presets_follow_the_paper_table():
    small, base, large = (build_config(p, {}) for p in ("small", "base", "large"))
    assert (small.model.num_layers, small.model.hidden_size, small.model.embedding_size) == (12, 256, 128)
    assert (base.model.hidden_size, base.model.num_heads, base.model.intermediate_size) == (768, 12, 3072)
    assert (large.model.num_layers, large.model.hidden_size, large.objective.mask_prob) == (24, 1024, 0.25)
    assert (small.train.lr, base.train.lr, large.train.lr) == (5e-4, 2e-4, 2e-4)
    assert (small.train.global_batch_size, base.train.global_batch_size, large.train.global_batch_size) == (128, 256, 2048)
    assert (small.train.seq_len, base.train.seq_len) == (128, 512)
    # max_predictions_per_seq as the original derives it (spec 1.2): 19, 79, 130
    assert (small.max_predictions, base.max_predictions, large.max_predictions) == (19, 79, 130)
    assert small.objective.disc_weight == 50.0 and small.train.adam_eps == 1e-6 and small.train.warmup_steps == 10_000


def test_generator_sizes_match_the_original():
    for preset, hidden, heads in (("small", 64, 1), ("base", 256, 4), ("large", 256, 4)):
        cfg = build_config(preset, {})
        g = generator_config(cfg.model, cfg.objective.generator_hidden_fraction, cfg.objective.generator_layers_fraction)
        assert (g.hidden_size, g.num_heads, g.intermediate_size, g.num_layers) == (hidden, heads, 4 * hidden, cfg.model.num_layers)
        assert g.embedding_size == cfg.model.embedding_size  # the shared table's width


def test_a_new_width_takes_the_size_rule_unless_told_and_debug_is_the_originals():
    """Spec 1.1: heads = max(1, hidden // 64), FFN = 4 x hidden, for whatever --hidden-size leaves unsaid."""
    wide = build_config("small", {"hidden-size": "512"}).model
    assert (wide.num_heads, wide.intermediate_size) == (8, 2048)
    told = build_config("small", {"hidden_size": "384", "num_heads": "4", "intermediate-size": "1000"}).model
    assert (told.num_heads, told.intermediate_size) == (4, 1000)
    assert build_config("small", {"num_layers": "6"}).model.num_heads == 4  # no new width: the preset's as they are
    # a resumed run's saved config keeps its sizes: re-running the command that started it changes nothing
    saved = build_config("tiny", {"hidden_size": "256", "num_heads": "2", "intermediate_size": "512"}).to_dict()
    again = build_config(None, {"hidden-size": "256"}, base=saved).model
    assert (again.num_heads, again.intermediate_size) == (2, 512)
    debug = build_config("debug", {})
    assert (debug.model.num_layers, debug.model.hidden_size, debug.model.intermediate_size, debug.model.num_heads,
            debug.train.global_batch_size, debug.train.max_steps) == (3, 144, 576, 4, 8, 20)


def test_precedence_defaults_preset_overrides():
    cfg = build_config("base", {"lr": "3e-4", "model.num_layers": "6", "max-steps": "1e3"})
    assert cfg.train.lr == 3e-4 and cfg.model.num_layers == 6 and cfg.train.max_steps == 1000
    assert cfg.model.hidden_size == 768  # from the preset


def test_split_overrides_takes_both_spellings():
    over, rest = split_overrides(["--data", "d", "--hidden-size", "64", "--train.lr=1e-3", "--out", "o", "--disallow-correct", "true"])
    assert over == {"hidden-size": "64", "train.lr": "1e-3", "disallow-correct": "true"}
    assert rest == ["--data", "d", "--out", "o"]
    assert build_config("tiny", over).objective.disallow_correct is True


def test_bare_bool_flag_means_true_and_others_need_a_value():
    over, rest = split_overrides(["--compile", "--compile-mode", "reduce-overhead", "--data", "d", "--disallow-correct"])
    assert over == {"compile": "true", "compile-mode": "reduce-overhead", "disallow-correct": "true"}
    assert rest == ["--data", "d"]
    cfg = build_config("small", over)
    assert cfg.train.compile is True and cfg.train.compile_mode == "reduce-overhead"
    with pytest.raises(UserError, match="--hidden-size needs a value"):
        split_overrides(["--hidden-size"])
    assert split_overrides(["--compile", "false"])[0] == {"compile": "false"}


@pytest.mark.parametrize("overrides, needle", [
    ({"hiden_size": "3"}, "hiden_size"),
    ({"hidden_size": "abc"}, "model.hidden_size"),
    ({"max_steps": "1.5"}, "train.max_steps"),
    ({"max_steps": "inf"}, "train.max_steps"),  # int(float("inf")) raises OverflowError, not ValueError
    ({"save_every": "1e400"}, "train.save_every"),
    ({"sharing": "some"}, "sharing"),
    ({"mask_prob": "1.5"}, "mask_prob"),
    ({"masking": "ngram"}, "objective.masking must be one of token, whole_word, span"),
    ({"masking": "span", "span_p": "0"}, r"objective.span_p must be in \(0, 1\]"),
    ({"masking": "span", "max_span": "0"}, "max_span >= 1"),
    ({"max_span": "5"}, "add --masking span"),  # a span setting without span masking would be ignored
    ({"seq_len": "1024"}, "position table"),
    ({"sharing": "all"}, "generator_hidden_fraction"),
    ({"hidden_size": "100", "num_heads": "3"}, "divisible"),
    ({"precision": "fp8"}, "precision"),
    ({"residual": "fp16"}, "train.residual"),
    ({"seed": "-1"}, "train.seed"),  # numpy's SeedSequence refuses it deep in the run (a ValueError traceback)
    ({"seed": str(2**64)}, "train.seed"),  # torch.manual_seed overflows
    ({"type_vocab_size": "1"}, r"segment ids 0 \(A\) and 1 \(B\)"),  # an IndexError deep in the embeddings otherwise
    ({"layer_norm_eps": "0"}, "model.layer_norm_eps must be > 0"),
    ({"initializer_range": "-1"}, "model.initializer_range must be > 0"),
    ({"disc_weight": "-1"}, "objective.disc_weight must be a number >= 0"),
    ({"gen_weight": "-0.5"}, "objective.gen_weight must be a number >= 0"),
    ({"adam_beta1": "1.5"}, r"train.adam_beta1 must be in \[0, 1\)"),
    ({"adam_beta2": "1"}, r"train.adam_beta2 must be in \[0, 1\)"),
    ({"weight_decay": "-1"}, "train.weight_decay must be"),
    ({"clip_norm": "-1"}, "train.clip_norm must be"),
    ({"max_time": "-5"}, "train.max_time must be"),
    ({"keep_every": "-1000"}, "keep_every must be >= 0"),
    ({"lr_schedule": "step"}, "train.lr_schedule must be linear, wsd or cosine"),
    ({"decay_fraction": "0"}, r"train.decay_fraction must be in \(0, 1\]"),
    ({"keep_every": "1500"}, r"train.keep_every \(1500\) must be a multiple of train.save_every \(1000\)"),
    ({"lr_decay_power": "-1"}, "train.lr_decay_power must be"),
    ({"adam_eps": "-1e-6"}, "train.adam_eps must be"),
])
def test_bad_values_name_the_field(overrides, needle):
    with pytest.raises(UserError, match=needle):
        build_config("small", overrides)


def test_sharing_all_with_equal_sizes_is_fine():
    cfg = build_config("small", {"sharing": "all", "generator_hidden_fraction": "1"})
    assert cfg.objective.sharing == "all"


def test_json_round_trip_and_unknown_sections():
    cfg = build_config("tiny", {"lr": "2e-3"})
    again = PretrainConfig.from_dict(json.loads(cfg.to_json()))
    assert again == cfg
    with pytest.raises(UserError, match="unknown config field"):
        PretrainConfig.from_dict({"model": {"width": 3}})
    with pytest.raises(UserError, match="unknown config section"):
        PretrainConfig.from_dict({"optim": {}})
    assert set(PRESETS) == {"debug", "tiny", "small", "base", "large"}


def test_integers_are_exact_and_accept_scientific_step_counts():
    big = 2**63 - 25  # not a float: parsing through float would round it
    cfg = build_config("tiny", {"seed": str(big), "max_steps": "1e6", "warmup_steps": "2.5e3"})
    assert (cfg.train.seed, cfg.train.max_steps, cfg.train.warmup_steps) == (big, 1_000_000, 2_500)
    with pytest.raises(UserError, match="train.max_steps"):
        build_config("tiny", {"max_steps": "1.5"})


def test_config_file_round_trips_and_sits_between_preset_and_flags(tmp_path, capsys):
    from electra.pretrain import main
    saved = tmp_path / "small.json"
    saved.write_text(build_config("small", {}).to_json())
    assert main(["--config", str(saved), "--print-config"]) == 0  # a whole config alone gives itself back
    assert json.loads(capsys.readouterr().out) == json.loads(saved.read_text())
    part = tmp_path / "part.json"  # sections or flat names, any spelling
    part.write_text(json.dumps({"train": {"lr": 2e-4, "compile": True}, "hidden-size": 512, "model.num_heads": 8}))
    assert main(["--preset", "small", "--config", str(part), "--lr", "1e-4", "--print-config"]) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["model"]["hidden_size"] == 512 and cfg["model"]["num_heads"] == 8 and cfg["train"]["compile"] is True
    assert cfg["train"]["lr"] == 1e-4  # the command line wins over the file
    assert cfg["model"]["num_layers"] == 12 and cfg["train"]["max_steps"] == 1_000_000  # the preset below the file


@pytest.mark.parametrize("text, needle", [
    ('{"train": {"lrr": 1}}', "unknown field 'train.lrr'"),
    ('[1, 2]', "must hold a JSON object"),
    ('{"train": ', "is not readable JSON"),
    ('{"lr": "fast"}', "bad value 'fast' for lr in config file"),
    ('{"max_steps": true}', "expected int"),
    ('{"train": {"lr": [1]}}', "must be a number, a string or a boolean"),
    ('{"model": 5}', "section 'model' must be a JSON object of its fields"),
])
def test_bad_config_files_are_one_line_errors_naming_the_file(tmp_path, text, needle):
    from electra.config import file_overrides
    path = tmp_path / "c.json"
    path.write_text(text)
    with pytest.raises(UserError, match="c.json") as e:
        file_overrides(path)
    assert needle in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(UserError, match="not found"):
        file_overrides(tmp_path / "missing.json")
