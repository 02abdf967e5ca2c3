"""The fraud model: a small PyTorch MLP over the raw ``FEATURE_COLUMNS``, plus fitting and evaluation.

``FraudMLP`` carries its own standardization (``mean``/``std`` buffers computed on the training split), so the
model logged to MLflow takes the raw feature matrix (float32, columns in ``FEATURE_COLUMNS`` order) and returns a
fraud probability per row. Nothing here touches Spark or MLflow: ``spark_jobs.train`` and ``spark_jobs.promote``
feed it numpy arrays.

Determinism: ``fit`` seeds torch, switches on deterministic algorithms and runs single-threaded on the CPU, and
shuffles mini-batches with its own seeded generator, so the same data and ``TrainConfig`` give bit-identical
weights.

Metrics (``evaluate``): ``roc_auc``; ``pr_auc`` (average precision, the step-wise area under the PR curve);
``recall_at_precision`` (the best recall whose precision is at least ``target_precision``) and the score threshold
that reaches it (``threshold_at_precision``), which scoring uses to set ``is_fraud_pred``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

METRIC_NAMES: tuple[str, ...] = ("roc_auc", "pr_auc", "recall_at_precision")
DEFAULT_THRESHOLD = 0.5  # used when no threshold reaches the target precision


class FraudMLP(nn.Module):
    """Standardize -> [Linear -> ReLU]* -> Linear; ``forward`` returns probabilities, ``logits`` the raw scores."""

    def __init__(self, n_features: int, hidden: tuple[int, ...] = (32, 16)) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))
        layers: list[nn.Module] = []
        width = n_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def set_standardization(self, x: np.ndarray) -> None:
        """Store the per-feature mean and std of ``x`` (constant columns get std 1)."""
        mean = x.astype(np.float64).mean(axis=0)
        std = x.astype(np.float64).std(axis=0)
        std[~np.isfinite(std) | (std < 1e-12)] = 1.0
        self.mean.copy_(torch.from_numpy(mean.astype(np.float32)))
        self.std.copy_(torch.from_numpy(std.astype(np.float32)))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Raw scores, shape ``(n,)``."""
        return self.net((x - self.mean) / self.std).squeeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Fraud probabilities, shape ``(n,)``."""
        return torch.sigmoid(self.logits(x))


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training; logged as MLflow params."""

    seed: int = 42
    epochs: int = 20
    hidden: tuple[int, ...] = field(default=(32, 16))
    learning_rate: float = 1e-2
    batch_size: int = 256
    weight_decay: float = 0.0

    def as_params(self) -> dict[str, Any]:
        """Flat, MLflow-friendly parameters."""
        params = asdict(self)
        params["hidden"] = ",".join(str(h) for h in self.hidden)
        return params


def seed_everything(seed: int) -> None:
    """Seed torch and numpy and make torch deterministic and single-threaded in this process."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)


def fit(x: np.ndarray, y: np.ndarray, config: TrainConfig) -> FraudMLP:
    """Train a ``FraudMLP`` on raw features ``x`` (n, f) and 0/1 labels ``y``; deterministic for a given config.

    Class imbalance is handled with ``pos_weight = negatives / positives`` in the loss. ``epochs=0`` returns the
    initialized, standardized but untrained model (a useful "bad model" baseline).
    """
    if len(x) == 0:
        raise ValueError("no training rows: the training split is empty")
    seed_everything(config.seed)
    model = FraudMLP(x.shape[1], config.hidden)
    model.set_standardization(x)
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    yt = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))
    positives = float(yt.sum())
    pos_weight = torch.tensor((len(yt) - positives) / positives if positives > 0 else 1.0)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(config.seed)
    model.train()
    for _ in range(config.epochs):
        order = torch.randperm(len(xt), generator=generator)
        for start in range(0, len(xt), config.batch_size):
            idx = order[start : start + config.batch_size]
            optimizer.zero_grad()
            loss = loss_fn(model.logits(xt[idx]), yt[idx])
            loss.backward()
            optimizer.step()
    return model.eval()


def predict_proba(model: nn.Module, x: np.ndarray, batch_size: int = 10_000, device: str = "cpu") -> np.ndarray:
    """Fraud probabilities for raw features ``x``, computed in batches of ``batch_size`` rows on ``device``."""
    out = []
    with torch.inference_mode():
        for start in range(0, len(x), max(batch_size, 1)):
            chunk = torch.from_numpy(np.ascontiguousarray(x[start : start + batch_size], dtype=np.float32))
            out.append(model(chunk.to(device)).reshape(-1).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def evaluate(y: np.ndarray, scores: np.ndarray, target_precision: float = 0.8) -> dict[str, float]:
    """ROC-AUC, PR-AUC (average precision), recall at ``target_precision`` and the threshold reaching it.

    Raises ``ValueError`` when ``y`` holds a single class (the metrics are undefined).
    """
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

    y = np.asarray(y).astype(int)
    if len(np.unique(y)) < 2:
        raise ValueError(f"evaluation needs both classes; got {len(y)} rows with labels {sorted(set(y.tolist()))}")
    precision, recall, thresholds = precision_recall_curve(y, scores)
    reachable = precision[:-1] >= target_precision  # the last point (recall 0) has no threshold
    if reachable.any():
        best = int(np.argmax(np.where(reachable, recall[:-1], -1.0)))
        recall_at, threshold = float(recall[best]), float(thresholds[best])
    else:
        recall_at, threshold = 0.0, DEFAULT_THRESHOLD
    return {
        "roc_auc": float(roc_auc_score(y, scores)),
        "pr_auc": float(average_precision_score(y, scores)),
        "recall_at_precision": recall_at,
        "threshold_at_precision": threshold,
    }
