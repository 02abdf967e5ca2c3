"""What a training run shows an ML engineer in MLflow: the holdout's plots, the features that matter, a model card.

Everything here takes the holdout labels, the model's scores and the decision threshold (``evaluate``'s
``threshold_at_precision``) as numpy arrays and returns matplotlib Figures (Agg backend, no display needed),
plain dicts or text; ``spark_jobs.train`` logs them. Nothing here touches Spark or MLflow.

- ``report_figures``: ROC and PR curves, a calibration plot (mean score against the observed fraud rate, per
  quantile bin), the score distribution by class, the confusion matrix at the threshold, and the permutation
  feature importance;
- ``permutation_importance``: per feature, how much the holdout's average precision drops when that column is
  shuffled (mean over ``repeats`` seeded shuffles). Model-agnostic, so it explains the network as it scores;
- ``confusion_at``: TP, FP, FN, TN at the threshold (a score at or above it is flagged, as scoring does);
- ``model_card``: the registered version's description (markdown).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

PLOTS = ("roc_curve", "pr_curve", "calibration", "score_distribution", "confusion_matrix", "feature_importance")
CALIBRATION_BINS = 10


def confusion_at(y: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, int]:
    """TP, FP, FN, TN when a score at or above ``threshold`` is flagged as fraud."""
    y, flagged = np.asarray(y).astype(bool), np.asarray(scores) >= threshold
    return {"tp": int(np.sum(flagged & y)), "fp": int(np.sum(flagged & ~y)),
            "fn": int(np.sum(~flagged & y)), "tn": int(np.sum(~flagged & ~y))}


def permutation_importance(predict: Callable[[np.ndarray], np.ndarray], x: np.ndarray, y: np.ndarray,
                           names: Sequence[str], repeats: int = 3, seed: int = 0) -> dict[str, float]:
    """Feature -> the mean drop in average precision when that column alone is shuffled, largest first."""
    from sklearn.metrics import average_precision_score

    if x.shape[1] != len(names):
        raise ValueError(f"{x.shape[1]} columns but {len(names)} feature names")
    rng = np.random.default_rng(seed)
    base = average_precision_score(y, predict(x))
    drops = {}
    for column, name in enumerate(names):
        shuffled = x.copy()
        losses = []
        for _ in range(repeats):
            shuffled[:, column] = rng.permutation(x[:, column])
            losses.append(base - average_precision_score(y, predict(shuffled)))
        drops[name] = float(np.mean(losses))
    return dict(sorted(drops.items(), key=lambda item: -item[1]))


def _figure(title: str, size: tuple[float, float] = (5, 4)) -> tuple["Figure", "Axes"]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_title(title)
    return fig, ax


def roc_figure(y: np.ndarray, scores: np.ndarray, title: str) -> "Figure":
    from sklearn.metrics import roc_auc_score, roc_curve

    fpr, tpr, _ = roc_curve(y, scores)
    fig, ax = _figure(title)
    ax.plot(fpr, tpr, label=f"AUC = {roc_auc_score(y, scores):.3f}")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1.05))
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def pr_curve_figure(y: np.ndarray, scores: np.ndarray, title: str) -> "Figure":
    from sklearn.metrics import average_precision_score, precision_recall_curve

    precision, recall, _ = precision_recall_curve(y, scores)
    fig, ax = _figure(title)
    ax.step(recall, precision, where="post", label=f"AP = {average_precision_score(y, scores):.3f}")
    ax.axhline(float(np.mean(y)), linestyle="--", color="grey", label="prevalence")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.05))
    ax.legend(loc="upper right")
    fig.tight_layout()
    return fig


def calibration_figure(y: np.ndarray, scores: np.ndarray, title: str) -> "Figure":
    from sklearn.calibration import calibration_curve

    observed, predicted = calibration_curve(y, scores, n_bins=CALIBRATION_BINS, strategy="quantile")
    fig, ax = _figure(title)
    ax.plot(predicted, observed, marker="o", label="model")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    ax.set(xlabel=f"mean score (quantile bins of {len(y) // CALIBRATION_BINS} rows)", ylabel="observed fraud rate",
           xlim=(0, 1), ylim=(0, 1.05))
    ax.legend(loc="upper left")
    fig.tight_layout()
    return fig


def score_distribution_figure(y: np.ndarray, scores: np.ndarray, threshold: float, title: str) -> "Figure":
    y = np.asarray(y).astype(bool)
    fig, ax = _figure(title)
    bins = np.linspace(0, 1, 41)
    ax.hist(scores[~y], bins=bins, alpha=0.6, label=f"legitimate ({int((~y).sum())})")
    ax.hist(scores[y], bins=bins, alpha=0.6, label=f"fraud ({int(y.sum())})")
    ax.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.3f}")
    ax.set(xlabel="fraud score", ylabel="transactions", yscale="log")
    ax.legend(loc="upper center")
    fig.tight_layout()
    return fig


def confusion_figure(counts: Mapping[str, int], threshold: float, title: str) -> "Figure":
    cells = np.array([[counts["tn"], counts["fp"]], [counts["fn"], counts["tp"]]])
    fig, ax = _figure(title, (4.5, 4))
    ax.imshow(cells, cmap="Blues")
    for (row, col), value in np.ndenumerate(cells):
        ax.text(col, row, str(value), ha="center", va="center", color="black")
    ax.set(xticks=[0, 1], yticks=[0, 1], xticklabels=["legitimate", "fraud"], yticklabels=["legitimate", "fraud"],
           xlabel=f"predicted (score >= {threshold:.3f})", ylabel="actual")
    fig.tight_layout()
    return fig


def importance_figure(importance: Mapping[str, float], title: str) -> "Figure":
    names = list(importance)[::-1]  # largest at the top
    fig, ax = _figure(title, (6, 0.28 * len(names) + 1.2))
    ax.barh(names, [importance[n] for n in names])
    ax.set(xlabel="drop in average precision when shuffled")
    ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    return fig


def report_figures(y: np.ndarray, scores: np.ndarray, threshold: float, importance: Mapping[str, float],
                   label: str) -> dict[str, "Figure"]:
    """Every plot of ``PLOTS`` for one holdout, by name; ``label`` goes into each title."""
    return {
        "roc_curve": roc_figure(y, scores, f"holdout ROC curve ({label})"),
        "pr_curve": pr_curve_figure(y, scores, f"holdout PR curve ({label})"),
        "calibration": calibration_figure(y, scores, f"calibration ({label})"),
        "score_distribution": score_distribution_figure(y, scores, threshold, f"scores by class ({label})"),
        "confusion_matrix": confusion_figure(confusion_at(y, scores, threshold), threshold, f"holdout ({label})"),
        "feature_importance": importance_figure(importance, f"permutation importance ({label})"),
    }


def model_card(*, model_name: str, feature_table: str, feature_table_version: int, window: Mapping[str, Any],
               train_rows: int, holdout_rows: int, holdout_fraud_rate: float, metrics: Mapping[str, float],
               target_precision: float, confusion: Mapping[str, int], importance: Mapping[str, float],
               hidden: Sequence[int], seed: int) -> str:
    """The registered version's description: what it is, what it was trained on, how it did, how to read it."""
    bounds = ", ".join(f"{k} {v}" for k, v in window.items() if v) or "the whole table"
    top = ", ".join(f"`{name}`" for name in list(importance)[:3])
    return "\n".join([
        f"**{model_name}**: fraud probability of a card transaction, from the {len(importance)} per-card "
        f"features of `{feature_table}` (raw values; the model standardizes them itself).",
        "",
        f"- Trained on `{feature_table}` version {feature_table_version} ({bounds}): {train_rows} rows; "
        f"evaluated on the latest {holdout_rows} by event time (fraud rate {holdout_fraud_rate:.2%}).",
        f"- Network: MLP, hidden layers {','.join(map(str, hidden))}, seed {seed} (same seed and table version, "
        "same weights).",
        f"- Holdout: ROC-AUC {metrics['roc_auc']:.3f}, PR-AUC {metrics['pr_auc']:.3f}, recall "
        f"{metrics['recall_at_precision']:.3f} at precision >= {target_precision:g}.",
        f"- Decision threshold {metrics['threshold_at_precision']:.4f} (tag `decision_threshold`): on the holdout "
        f"{confusion['tp']} frauds caught, {confusion['fn']} missed, {confusion['fp']} legitimate flagged.",
        f"- Most important features (permutation): {top}.",
        "- Intended use: ranking transactions for review, by batch and stream scoring of `@champion`. The scores "
        "are not calibrated probabilities unless the calibration plot says so; the synthetic reference data is "
        "not a production fraud rate.",
    ])
