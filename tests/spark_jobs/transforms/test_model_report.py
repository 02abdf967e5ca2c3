"""The training report's parts (spark_jobs/transforms/model_report.py), on arrays whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from spark_jobs.transforms.model_report import PLOTS, confusion_at, model_card, permutation_importance, report_figures


def _data(n: int = 400, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype("float32")
    y = (x[:, 2] + 0.3 * rng.normal(size=n) > 1.0).astype("float32")  # only column 2 carries the signal
    return x, y


def test_permutation_importance_ranks_the_one_informative_column_first():
    x, y = _data()
    importance = permutation_importance(lambda m: m[:, 2], x, y, ["a", "b", "signal", "d"], repeats=2, seed=1)
    assert list(importance)[0] == "signal"
    assert importance["signal"] > 0.3
    assert all(importance[name] == 0.0 for name in ("a", "b", "d"))  # the model ignores them: shuffling costs nothing
    assert permutation_importance(lambda m: m[:, 2], x, y, ["a", "b", "signal", "d"], repeats=2, seed=1) == importance
    with pytest.raises(ValueError, match="4 columns but 3 feature names"):
        permutation_importance(lambda m: m[:, 2], x, y, ["a", "b", "c"])


def test_confusion_counts_flag_scores_at_or_above_the_threshold():
    y = np.array([1, 1, 0, 0, 1, 0])
    scores = np.array([0.9, 0.5, 0.5, 0.1, 0.2, 0.7])
    assert confusion_at(y, scores, 0.5) == {"tp": 2, "fp": 2, "fn": 1, "tn": 1}
    assert sum(confusion_at(y, scores, 0.0).values()) == len(y)


def test_every_plot_renders_for_a_holdout():
    x, y = _data()
    scores = 1 / (1 + np.exp(-3 * (x[:, 2] - 1)))
    figures = report_figures(y, scores, 0.5, {"signal": 0.4, "a": 0.0}, "test")
    assert tuple(figures) == PLOTS
    for name, figure in figures.items():
        assert figure.axes and figure.axes[0].get_title(), name
        figure.canvas.draw()  # renders (Agg) without a display


def test_the_model_card_states_data_metrics_threshold_and_top_features():
    card = model_card(model_name="fraud", feature_table="features_card", feature_table_version=7,
                      window={"start": "2026-11-01T00:00:00+00:00", "end": None}, train_rows=800, holdout_rows=200,
                      holdout_fraud_rate=0.05, metrics={"roc_auc": 0.91, "pr_auc": 0.42, "recall_at_precision": 0.3,
                                                        "threshold_at_precision": 0.8123},
                      target_precision=0.8, confusion={"tp": 3, "fp": 1, "fn": 7, "tn": 189},
                      importance={"amount_zscore": 0.2, "is_foreign": 0.1, "hour_of_day": 0.05, "x": 0.0},
                      hidden=(32, 16), seed=7)
    assert "`features_card` version 7 (start 2026-11-01T00:00:00+00:00): 800 rows" in card
    assert "latest 200 by event time (fraud rate 5.00%)" in card
    assert "ROC-AUC 0.910, PR-AUC 0.420, recall 0.300 at precision >= 0.8" in card
    assert "threshold 0.8123" in card and "3 frauds caught, 7 missed, 1 legitimate flagged" in card
    assert "`amount_zscore`, `is_foreign`, `hour_of_day`" in card and "`x`" not in card
