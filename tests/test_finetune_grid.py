"""`electra finetune --lr A,B --layer-decay C,D`: the paper's search, every combination run with all seeds, the
point with the best median dev score chosen; its runs are those of a plain run at that point.

    python -m pytest tests/test_finetune_grid.py -q
"""
from __future__ import annotations

import json

import pytest
from test_finetune_custom import FAST, sentiment_rows, write_csv
from test_finetune_fixtures import make_run

from electra.cli import main
from electra.errors import UserError
from electra.finetune.cli import grid_points


def test_grid_points_are_every_combination_checked_like_single_values():
    overrides = {"lr": "1e-4, 3e-4,1e-4", "layer-decay": "0.8,0.9", "epochs": "2"}
    points = grid_points(overrides)
    assert points == [{"lr": 1e-4, "layer_decay": 0.8}, {"lr": 1e-4, "layer_decay": 0.9},
                      {"lr": 3e-4, "layer_decay": 0.8}, {"lr": 3e-4, "layer_decay": 0.9}]
    assert overrides == {"lr": "1e-4", "layer-decay": "0.8", "epochs": "2"}  # the first value stands for the config
    assert grid_points({"lr": "1e-4"}) is None
    with pytest.raises(UserError, match="layer_decay must be in"):
        grid_points({"layer_decay": "0.8,1.5"})
    with pytest.raises(UserError, match="--lr"):
        grid_points({"lr": "1e-4,fast"})


def test_the_best_median_point_is_chosen_and_equals_its_plain_run(tmp_path):
    run, data = make_run(tmp_path), tmp_path / "mine"
    write_csv(data / "train.csv", ["id", "text", "label"], sentiment_rows(48, 0))
    write_csv(data / "dev.csv", ["id", "text", "label"], sentiment_rows(12, 1))
    fast = [x for x in FAST]
    i = fast.index("--lr")
    del fast[i:i + 2]
    common = ["finetune", "--task", "classify", "--data", str(data), "--model", str(run), "--seeds", "2", *fast]
    assert main([*common, "--out", str(tmp_path / "grid"), "--lr", "1e-7,3e-3"]) == 0
    grid = json.loads((tmp_path / "grid" / "results.json").read_text())
    assert [p["lr"] for p in grid["grid"]] == [1e-7, 3e-3] and all(len(p["runs"]) == 2 for p in grid["grid"])
    assert grid["config"]["lr"] == 3e-3 and grid["grid"][1]["median"] > grid["grid"][0]["median"]
    assert json.loads((tmp_path / "grid" / "model" / "finetune.json").read_text())["config"]["lr"] == 3e-3
    assert main([*common, "--out", str(tmp_path / "plain"), "--lr", "3e-3"]) == 0
    plain = json.loads((tmp_path / "plain" / "results.json").read_text())
    assert "grid" not in plain
    assert [r["metrics"] for r in plain["runs"]] == [r["metrics"] for r in grid["runs"]]
    assert plain["summary"] == grid["summary"] and plain["best_seed"] == grid["best_seed"]
