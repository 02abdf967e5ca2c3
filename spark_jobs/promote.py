"""Promotion gate: move the MLflow alias ``@champion`` to the ``@challenger`` when the policy says so.

The policy is data (``mlflow/promotion-policy.yaml``, see ``mlflow/README.md``); ``decide`` is the pure function
that applies it. The gate re-evaluates the challenger and the current champion on the SAME holdout (the latest
``evaluation.holdout_fraction`` of the current ``features_card`` by ``event_time``), then:

- no champion yet: promote if the challenger meets the absolute thresholds;
- otherwise: promote if it meets the thresholds AND beats the champion's ``metric`` by ``min_improvement``.

Every decision is recorded as ``promotion.*`` tags on the challenger's model version (decision, reason, both
models' metrics, the champion it replaced, time, policy). A rejection is a normal outcome (exit 0; the decision is
in the ``TRIBUTARY_RESULT`` line). Tags are written before the alias moves, so a promoted version always knows
the version it replaced, which is what ``--rollback`` moves ``@champion`` back to.

Run by hand::

    uv run python -m spark_jobs.promote --profile local                 # gate @challenger against @champion
    uv run python -m spark_jobs.promote --profile local --version 3     # manual promotion (reason "manual")
    uv run python -m spark_jobs.promote --profile local --rollback      # @champion back to the version it replaced
    spark-submit spark_jobs/promote.py --profile local --policy mlflow/promotion-policy.yaml
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import yaml

from spark_jobs import io
from spark_jobs.cli import emit_result, fail, job_parser, optional, parse_job_args
from spark_jobs.session import build_session
from spark_jobs.tracking import CHALLENGER_ALIAS, CHAMPION_ALIAS, TrackingUnavailable, configure_mlflow
from spark_jobs.transforms.card_features import FEATURE_COLUMNS
from spark_jobs.transforms.model import METRIC_NAMES, evaluate, predict_proba
from spark_jobs.transforms.training_data import collect_split, time_split, to_xy
from tributary.config import REPO_ROOT
from tributary.registry import get_job

if TYPE_CHECKING:
    import numpy as np
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion
    from pyspark.sql import SparkSession

    from tributary.config import Profile

JOB = get_job("promote")  # its datasets by role (conf/jobs.yaml)
POLICY_PATH = REPO_ROOT / "mlflow" / "promotion-policy.yaml"
TAG = "promotion."
NONE = "none"
POLICY_KEYS = {"version", "metric", "min_improvement", "thresholds", "evaluation"}
EVALUATION_KEYS = {"holdout_fraction", "target_precision"}


class PolicyError(ValueError):
    """The promotion policy file is missing keys, has unknown keys or bad values."""


class PromotionError(RuntimeError):
    """A promotion or rollback cannot proceed (no challenger, unknown version, nothing to roll back to)."""


@dataclass(frozen=True)
class Policy:
    """A validated promotion policy; all metrics are higher-is-better."""

    metric: str
    min_improvement: float
    thresholds: Mapping[str, float]  # metric -> minimum value
    holdout_fraction: float
    target_precision: float

    def to_json(self) -> str:
        """Compact JSON, recorded in the ``promotion.policy`` tag."""
        return json.dumps({**asdict(self), "thresholds": dict(self.thresholds)}, sort_keys=True)


@dataclass(frozen=True)
class Decision:
    """The outcome of applying a policy: promote or not, and a human-readable reason."""

    promote: bool
    reason: str

    @property
    def decision(self) -> str:
        return "promoted" if self.promote else "rejected"


def parse_policy(raw: Any, source: str = "policy") -> Policy:
    """Validate a policy mapping (the YAML document); unknown or missing keys and bad values raise PolicyError."""
    if not isinstance(raw, Mapping) or set(raw) != POLICY_KEYS:
        have = sorted(raw) if isinstance(raw, Mapping) else type(raw).__name__
        raise PolicyError(f"{source}: needs exactly the keys {sorted(POLICY_KEYS)}, has {have}")
    if raw["version"] != 1:
        raise PolicyError(f"{source}: unsupported policy version {raw['version']!r} (this code reads version 1)")
    if raw["metric"] not in METRIC_NAMES:
        raise PolicyError(f"{source}: metric {raw['metric']!r} is not one of {list(METRIC_NAMES)}")
    thresholds: dict[str, float] = {}
    for key, value in (raw["thresholds"] or {}).items():
        metric = key.removeprefix("min_")
        if not key.startswith("min_") or metric not in METRIC_NAMES:
            raise PolicyError(f"{source}: threshold {key!r} must be min_<metric>, metric one of {list(METRIC_NAMES)}")
        thresholds[metric] = _number(value, f"{source}: thresholds.{key}", 0.0, 1.0)
    evaluation = raw["evaluation"]
    if not isinstance(evaluation, Mapping) or set(evaluation) != EVALUATION_KEYS:
        raise PolicyError(f"{source}: evaluation needs exactly the keys {sorted(EVALUATION_KEYS)}")
    return Policy(
        metric=raw["metric"],
        min_improvement=_number(raw["min_improvement"], f"{source}: min_improvement", -1.0, 1.0),
        thresholds=thresholds,
        holdout_fraction=_number(evaluation["holdout_fraction"], f"{source}: evaluation.holdout_fraction", 0.0, 1.0),
        target_precision=_number(evaluation["target_precision"], f"{source}: evaluation.target_precision", 0.0, 1.0),
    )


def _number(value: Any, where: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise PolicyError(f"{where} must be a number in [{low}, {high}], got {value!r}")
    return float(value)


def load_policy(path: Path = POLICY_PATH) -> Policy:
    """Read and validate the policy file."""
    if not path.is_file():
        raise PolicyError(f"promotion policy {path} not found; pass --policy PATH")
    return parse_policy(yaml.safe_load(path.read_text()), str(path))


def decide(policy: Policy, challenger: Mapping[str, float], champion: Mapping[str, float] | None) -> Decision:
    """Apply ``policy`` to the challenger's and (if any) the champion's metrics on the same holdout.

    Rejects a challenger below any absolute threshold or with a missing/non-finite metric; with no champion,
    promotes one that meets the thresholds; otherwise requires ``challenger[metric] - champion[metric] >=
    min_improvement``.
    """
    needed = sorted({policy.metric, *policy.thresholds})
    bad = [m for m in needed if not _finite(challenger.get(m))]
    if bad:
        return Decision(False, f"challenger metrics missing or not finite: {bad}")
    floors = sorted(policy.thresholds.items())
    below = [f"{m} {challenger[m]:.4f} < min {floor:.4f}" for m, floor in floors if challenger[m] < floor]
    if below:
        return Decision(False, "below absolute thresholds: " + "; ".join(below))
    met = ", ".join(f"{m} {challenger[m]:.4f} >= {floor:.4f}" for m, floor in floors)
    if champion is None:
        return Decision(True, f"no champion yet; meets absolute thresholds ({met or 'none set'})")
    m = policy.metric
    if not _finite(champion.get(m)):
        return Decision(True, f"champion {m} missing or not finite; challenger meets absolute thresholds ({met})")
    delta = challenger[m] - champion[m]
    comparison = f"{m} {challenger[m]:.4f} vs champion {champion[m]:.4f} (delta {delta:+.4f})"
    if delta >= policy.min_improvement:
        return Decision(True, f"{comparison} >= min_improvement {policy.min_improvement:+.4f}")
    return Decision(False, f"{comparison} < min_improvement {policy.min_improvement:+.4f}")


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


# --- registry side ----------------------------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def version_by_alias(client: "MlflowClient", name: str, alias: str) -> "ModelVersion | None":
    """The model version ``alias`` points at, or None when the model or the alias does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise


def get_version(client: "MlflowClient", name: str, version: int | str) -> "ModelVersion":
    """A registered model version, or PromotionError naming the versions that exist."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version(name, str(version))
    except MlflowException:
        known = sorted(int(v.version) for v in client.search_model_versions(f"name='{name}'"))
        raise PromotionError(
            f"model '{name}' has no version {version}; registered versions: {known or 'none (run spark_jobs.train)'}"
        ) from None


def evaluate_version(mv: "ModelVersion", x: "np.ndarray", y: "np.ndarray", target_precision: float) -> dict[str, float]:
    """Load a registered version and compute its metrics on ``(x, y)``."""
    import mlflow.pytorch

    columns = mv.tags.get("feature_columns")
    if columns and columns.split(",") != FEATURE_COLUMNS:
        raise PromotionError(
            f"version {mv.version} was trained on other feature columns ({columns}); it cannot be evaluated on "
            f"the current features_card. Promote explicitly with --version N"
        )
    model = mlflow.pytorch.load_model(f"models:/{mv.name}/{mv.version}")
    return evaluate(y, predict_proba(model, x), target_precision)


def _metric_tags(prefix: str, metrics: Mapping[str, float] | None) -> dict[str, str]:
    return {f"{TAG}{prefix}_{m}": (repr(metrics[m]) if metrics and m in metrics else NONE) for m in METRIC_NAMES}


def _record_and_move(client: "MlflowClient", name: str, version: str, tags: Mapping[str, str], move: bool) -> None:
    """Write the decision tags on ``version``, then (if ``move``) point ``@champion`` at it."""
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    if move:
        client.set_registered_model_alias(name, CHAMPION_ALIAS, version)


def load_holdout(spark: "SparkSession", profile: "Profile", policy: Policy) -> tuple["np.ndarray", "np.ndarray", int]:
    """The policy's time holdout of the current ``features_card``: (features, labels, table version)."""
    catalog, features = profile.catalog, JOB.input("features")
    if not io.table_exists(spark, catalog, features):
        raise PromotionError(f"no {features} table at {catalog.uri(features)}; run spark_jobs.features")
    version = io.table_version(spark, catalog, features)
    _, holdout = time_split(io.read_table(spark, catalog, features, version), policy.holdout_fraction)
    x, y = to_xy(collect_split(holdout))
    return x, y, version


def gate(
    client: "MlflowClient",
    name: str,
    policy: Policy,
    challenger: "ModelVersion",
    holdout: Callable[[], tuple["np.ndarray", "np.ndarray", int]],
) -> dict[str, Any]:
    """Evaluate challenger and champion on the holdout, apply ``decide``, record the tags, maybe move ``@champion``.

    ``holdout()`` returns (features, labels, feature table version); it is only called when there is something
    to evaluate (not when the challenger already is the champion or was rolled back).
    """
    champion = version_by_alias(client, name, CHAMPION_ALIAS)
    before = str(champion.version) if champion else NONE
    result: dict[str, Any] = {
        "model_name": name,
        "challenger_version": int(challenger.version),
        "champion_version": int(champion.version) if champion else None,
    }
    if champion is not None and str(champion.version) == str(challenger.version):
        return {**result, "decision": "unchanged", "reason": "the challenger is already the champion"}
    if challenger.tags.get(f"{TAG}rolled_back_at"):
        reason = f"version {challenger.version} was rolled back; train a new model or promote it with --version"
        return {**result, "decision": "rejected", "reason": reason}
    x, y, table_version = holdout()
    challenger_metrics = evaluate_version(challenger, x, y, policy.target_precision)
    champion_metrics = evaluate_version(champion, x, y, policy.target_precision) if champion else None
    decision = decide(policy, challenger_metrics, champion_metrics)
    tags = {
        f"{TAG}decision": decision.decision,
        f"{TAG}reason": decision.reason,
        f"{TAG}metric": policy.metric,
        **_metric_tags("challenger", challenger_metrics),
        **_metric_tags("champion", champion_metrics),
        f"{TAG}champion_version_before": before,
        f"{TAG}decided_at": _now(),
        f"{TAG}policy": policy.to_json(),
        f"{TAG}feature_table_version": str(table_version),
        f"{TAG}holdout_rows": str(len(y)),
    }
    _record_and_move(client, name, str(challenger.version), tags, decision.promote)
    after = challenger.version if decision.promote else (champion.version if champion else None)
    return {
        **result,
        "decision": decision.decision,
        "reason": decision.reason,
        "champion_version": int(after) if after else None,
        "champion_version_before": None if before == NONE else int(before),
        "challenger_metrics": challenger_metrics,
        "champion_metrics": champion_metrics,
        "feature_table_version": table_version,
    }


def promote_manual(client: "MlflowClient", name: str, version: int) -> dict[str, Any]:
    """Point ``@champion`` at ``version`` without evaluation (reason "manual")."""
    mv = get_version(client, name, version)
    champion = version_by_alias(client, name, CHAMPION_ALIAS)
    result = {"model_name": name, "champion_version": int(mv.version)}
    if champion is not None and str(champion.version) == str(mv.version):
        return {**result, "decision": "unchanged", "reason": f"version {mv.version} is already the champion"}
    before = str(champion.version) if champion else NONE
    tags = {
        f"{TAG}decision": "promoted",
        f"{TAG}reason": "manual",
        f"{TAG}champion_version_before": before,
        f"{TAG}decided_at": _now(),
        f"{TAG}policy": "manual",
    }
    _record_and_move(client, name, str(mv.version), tags, move=True)
    previous = None if before == NONE else int(before)
    return {**result, "decision": "promoted", "reason": "manual", "champion_version_before": previous}


def rollback(client: "MlflowClient", name: str) -> dict[str, Any]:
    """Move ``@champion`` back to the version the current champion replaced; tag both versions."""
    champion = version_by_alias(client, name, CHAMPION_ALIAS)
    if champion is None:
        raise PromotionError(f"model '{name}' has no @{CHAMPION_ALIAS}; nothing to roll back")
    previous = champion.tags.get(f"{TAG}champion_version_before", NONE)
    if previous == NONE:
        raise PromotionError(
            f"@{CHAMPION_ALIAS} (version {champion.version}) did not replace an earlier champion; nothing to roll "
            f"back to. Promote a version explicitly: tributary promote --version N"
        )
    restored = get_version(client, name, previous)
    at, current, back = _now(), str(champion.version), str(restored.version)
    client.set_model_version_tag(name, current, f"{TAG}rolled_back_at", at)
    client.set_model_version_tag(name, current, f"{TAG}rolled_back_to", back)
    client.set_model_version_tag(name, back, f"{TAG}restored_at", at)
    client.set_model_version_tag(name, back, f"{TAG}restored_from", current)
    client.set_registered_model_alias(name, CHAMPION_ALIAS, back)
    return {
        "model_name": name,
        "decision": "rolled_back",
        "reason": f"rollback from version {champion.version}",
        "champion_version": int(restored.version),
        "champion_version_before": int(champion.version),
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Gate the challenger (default), promote ``--version N`` or ``--rollback``; emit and return the result."""
    parser = job_parser(__doc__)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--version", type=optional(int), help="promote this registered version (no evaluation)")
    mode.add_argument("--rollback", action="store_true", help="move @champion back to the version it replaced")
    parser.add_argument("--policy", type=Path, default=POLICY_PATH, help="promotion policy YAML")
    args, profile = parse_job_args(parser, argv, JOB)
    from mlflow import MlflowClient

    name = profile.mlflow["model_name"]
    try:
        configure_mlflow(profile)  # before the client: it keeps the tracking URI it was created with
        client = MlflowClient()
        if args.rollback:
            result = rollback(client, name)
        elif args.version is not None:
            result = promote_manual(client, name, args.version)
        else:
            policy = load_policy(args.policy)
            challenger = version_by_alias(client, name, CHALLENGER_ALIAS)
            if challenger is None:
                raise PromotionError(f"model '{name}' has no @{CHALLENGER_ALIAS}; run spark_jobs.train first")
            holdout = lambda: load_holdout(build_session(profile, "tributary-promote"), profile, policy)  # noqa: E731
            result = gate(client, name, policy, challenger, holdout)
    except (PromotionError, PolicyError, TrackingUnavailable) as exc:
        fail(str(exc), retry=isinstance(exc, TrackingUnavailable))
    emit_result("promote", result)
    return result


if __name__ == "__main__":
    main()
