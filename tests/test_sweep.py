"""Model sweeps on one machine: results, caching without forward passes, failures, report."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tokendim_widgets import TokendimError
from tokendim_widgets.analysis import id_curve, summarize
from tokendim_widgets.extraction import extract
from tokendim_widgets.sweeps import spearman, sweep

# Text the tiny tokenizers know (as in conftest.CORPUS), each prompt a few dozen tokens.
PROMPTS = [
    "The quick brown fox jumps over the lazy dog.",
    "A language model moves each token through its layers.",
    "def add(a, b):\n    return a + b",
    "Intrinsic dimension measures how many directions a cloud uses.",
    "She opened the door, looked outside and smiled at the rain.",
    "SELECT name FROM users WHERE age > 30;",
] * 3


@pytest.fixture
def forward_counter(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Counts every torch module call (a forward pass calls at least one)."""
    import torch

    calls = {"n": 0}
    original = torch.nn.Module.__call__

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Module, "__call__", counted)
    return calls


def test_sweep_matches_each_model_alone(
    tiny_dir: Any, tmp_path: Any, forward_counter: dict[str, int]
) -> None:
    models = {"gpt2": tiny_dir("gpt2"), "llama": tiny_dir("llama"), "bert": tiny_dir("bert")}
    result = sweep(models, PROMPTS, estimators=["twonn", "mle"], cache_dir=tmp_path, progress=False)
    assert result.errors.empty
    assert list(result.models["status"]) == ["computed"] * 3
    assert set(result.curves["model"]) == set(models)
    for column in ("model", "estimator", "layer", "depth", "dimension", "lower", "upper"):
        assert column in result.curves
    assert "n_distinct" in result.curves
    assert len(result.metrics) == 6  # 3 models x 2 estimators
    # Each model alone, through the ordinary API, gives the same curve and metrics.
    states = extract(models["llama"], PROMPTS, cache=False, progress=False)
    alone = id_curve(states, "mle")
    swept = result.curves.query("model == 'llama' and estimator == 'mle'")
    np.testing.assert_allclose(swept["dimension"], alone["dimension"], rtol=1e-6)
    np.testing.assert_allclose(swept["lower"], alone["lower"], rtol=1e-6)
    row = result.metrics.query("model == 'llama' and estimator == 'mle'").iloc[0]
    assert row["working_dimension"] == pytest.approx(summarize(alone)["working_dimension"])
    # Quality: causal models have loss and bits per byte with intervals; the encoder NaN.
    gpt2 = result.metrics.query("model == 'gpt2'").iloc[0]
    assert gpt2["loss_lower"] < gpt2["loss"] < gpt2["loss_upper"]
    assert gpt2["bits_per_byte_lower"] < gpt2["bits_per_byte"] < gpt2["bits_per_byte_upper"]
    # A random model over a 320-token vocabulary: about log(320) nats per token.
    assert abs(gpt2["loss"] - math.log(320)) < 1.0
    bert = result.metrics.query("model == 'bert'").iloc[0]
    assert np.isnan(bert["bits_per_byte"]) and "no next-token head" in bert["quality_note"]

    # Second sweep: every model from the cache, not one forward pass.
    forward_counter["n"] = 0
    again = sweep(models, PROMPTS, estimators=["twonn", "mle"], cache_dir=tmp_path, progress=False)
    assert forward_counter["n"] == 0
    assert list(again.models["status"]) == ["cached"] * 3
    pd.testing.assert_frame_equal(again.curves, result.curves, check_dtype=False)
    pd.testing.assert_frame_equal(again.metrics, result.metrics, check_dtype=False)


def test_failed_model_does_not_stop_the_sweep(tiny_dir: Any, tmp_path: Any) -> None:
    ticks: list[tuple[int, int, str]] = []
    result = sweep(
        {"gpt2": tiny_dir("gpt2"), "nope": "./no-such-model-xyz"},
        PROMPTS,
        quality=False,
        cache_dir=tmp_path,
        progress=lambda done, total, model: ticks.append((done, total, model)),
    )
    assert ticks == [(1, 2, "gpt2"), (2, 2, "nope")]
    assert list(result.models["status"]) == ["computed", "failed"]
    assert list(result.errors["model"]) == ["nope"]
    assert "no-such-model-xyz" in result.errors["error"].iloc[0]
    assert set(result.curves["model"]) == {"gpt2"}
    assert result.metrics["quality_note"].iloc[0].startswith("not measured")


def test_report_and_session(tiny_dir: Any, tmp_path: Any) -> None:
    models = {"gpt2": tiny_dir("gpt2"), "llama": tiny_dir("llama")}
    result = sweep(models, PROMPTS, cache_dir=tmp_path / "cache", progress=False)
    files = result.write(tmp_path / "out", format="csv")
    assert sorted(p.name for p in files) == [
        "curves.csv",
        "metrics.csv",
        "models.csv",
        "summary.txt",
    ]
    back = pd.read_csv(tmp_path / "out" / "curves.csv")
    assert len(back) == len(result.curves)
    text = (tmp_path / "out" / "summary.txt").read_text()
    assert "bits/byte" in text and "gpt2 / twonn" in text
    session = result.session("llama")
    try:
        assert session.model == models["llama"] and session.estimator == "twonn"
    finally:
        session.close()
    with pytest.raises(TokendimError, match="No model"):
        result.session("other")


def test_bad_arguments_raise_before_any_work(tmp_path: Any) -> None:
    with pytest.raises(TokendimError, match="executor"):
        sweep(["a"], PROMPTS, executor="spark")
    with pytest.raises(TokendimError, match="twice"):
        sweep(["a", "a"], PROMPTS)
    with pytest.raises(TokendimError, match="estimator"):
        sweep(["a"], PROMPTS, estimators=["twonm"])


def test_spearman_interval() -> None:
    rng = np.random.default_rng(1)
    x = np.arange(12.0)
    r = spearman(x, -x + rng.normal(scale=0.5, size=12))
    assert r["rho"] < -0.9 and r["lower"] <= r["rho"] <= r["upper"] <= -0.5
    assert np.isnan(spearman([1.0, 2.0], [2.0, 1.0])["rho"])
    # Ranks, not values: a monotone transform does not change it.
    assert spearman(x, np.exp(x))["rho"] == pytest.approx(1.0)


def _result() -> Any:
    from tokendim_widgets.sweeps import SweepResult

    curves = pd.DataFrame(
        {
            "model": ["a"] * 3 + ["b"] * 3 + ["c"] * 3,
            "estimator": "twonn",
            "layer": [0, 1, 2] * 3,
            "depth": [0.0, 0.5, 1.0] * 3,
            "dimension": [3.0, 9.0, 5.0, 3.0, 7.0, np.nan, 2.0, 6.0, 4.0],
            "lower": [2.0, 8.0, 4.0, 2.0, 6.0, np.nan, 1.0, 5.0, 3.0],
            "upper": [4.0, 10.0, 6.0, 4.0, 8.0, np.nan, 3.0, 7.0, 5.0],
        }
    )
    metrics = pd.DataFrame(
        {
            "model": ["a", "b", "c"],
            "estimator": "twonn",
            "working_dimension": [9.0, 7.0, 6.0],
            "working_dimension_lower": [8.0, 6.0, 5.0],
            "working_dimension_upper": [10.0, 8.0, 7.0],
            "bits_per_byte": [1.0, 2.0, np.nan],
            "bits_per_byte_lower": [0.9, 1.8, np.nan],
            "bits_per_byte_upper": [1.1, 2.2, np.nan],
        }
    )
    models = pd.DataFrame(
        {"model": ["a", "b", "c"], "ref": ["ref-a", "ref-b", "ref-c"], "status": "computed"}
    )
    return SweepResult(curves, metrics, models, {"prompts": ["x y z"], "estimator": "twonn"})


def test_sweep_view_payload_and_selection() -> None:
    from tokendim_widgets import SweepView

    view = SweepView(_result())
    assert [c["model"] for c in view.sweep_curves] == ["a", "b", "c"]
    assert view.sweep_curves[1]["dimension"] == [3.0, 7.0, None]  # NaN travels as null
    point = view.sweep_points[0]
    assert (point["x"], point["x_lower"], point["y_upper"]) == (1.0, 0.9, 10.0)
    assert view.sweep_points[2]["x"] is None  # an encoder: no quality
    assert view.sweep_correlation["n"] == 2 and view.sweep_correlation["rho"] is None
    with pytest.raises(TokendimError, match="No model selected"):
        view.session()
    view.selected_model = "b"
    session = view.session()
    try:
        assert session.model == "ref-b" and session.estimator == "twonn"
    finally:
        session.close()
    with pytest.raises(TokendimError, match="No estimator"):
        view.estimator = "mle"


def test_cli_sweep_writes_a_report(tiny_dir: Any, tmp_path: Any, capsys: Any) -> None:
    from tokendim_widgets.cli import main

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(p for p in PROMPTS if "\n" not in p) + "\n")
    out = tmp_path / "out"
    argv = ["sweep", "--model", tiny_dir("gpt2"), "--model", "./no-such-model-xyz"]
    argv += ["--prompts", str(prompts), "--no-quality", "--format", "csv", "--out", str(out)]
    argv += ["--cache-dir", str(tmp_path / "cache")]
    assert main(argv) == 1  # one model failed: reported, the other written
    models = pd.read_csv(out / "models.csv")
    assert list(models["status"]) == ["computed", "failed"]
    assert (out / "curves.csv").exists() and (out / "summary.txt").exists()
    captured = capsys.readouterr()
    assert "1 model(s) failed" in captured.err
    assert "./no-such-model-xyz: failed" in captured.out


def test_spearman_carries_model_intervals() -> None:
    x = np.arange(8.0)
    y = -x
    tight = spearman(x, y)
    assert tight["rho"] == pytest.approx(-1.0)
    assert tight["upper"] == pytest.approx(-1.0)  # every resample keeps the order
    # Intervals that overlap their neighbours' let ranks swap: the interval widens, the
    # estimate does not move.
    loose = spearman(x, y, y_interval=(y - 3.0, y + 3.0))
    assert loose["rho"] == pytest.approx(-1.0)
    assert loose["upper"] > -0.95
    # Intervals far narrower than the gaps change nothing.
    narrow = spearman(x, y, x_interval=(x - 1e-6, x + 1e-6), y_interval=(y - 1e-6, y + 1e-6))
    assert narrow["upper"] == pytest.approx(-1.0)
    # Replicates are seeded.
    assert spearman(x, y, y_interval=(y - 3.0, y + 3.0)) == loose
    with pytest.raises(TokendimError, match="y_interval"):
        spearman(x, y, y_interval=(y, y[:3]))
