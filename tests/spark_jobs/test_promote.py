"""Tests for spark_jobs.promote: the pure policy decision, and the gate / manual promotion / rollback on MLflow."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient
from pyspark.sql import SparkSession

from spark_jobs import promote
from spark_jobs.promote import POLICY_PATH, Decision, Policy, PolicyError, decide, load_policy, parse_policy
from spark_jobs.tracking import configure_mlflow
from tests.spark_jobs.ml_support import (  # noqa: F401
    features_frame,
    mlflow_store,
    register_model,
    result_of,
    write_features,
)

POLICY = Policy(
    metric="pr_auc",
    min_improvement=0.01,
    thresholds={"pr_auc": 0.3, "roc_auc": 0.7},
    holdout_fraction=0.2,
    target_precision=0.8,
)
GOOD = {"pr_auc": 0.6, "roc_auc": 0.9, "recall_at_precision": 0.4}
RAW_POLICY = {
    "version": 1,
    "metric": "pr_auc",
    "min_improvement": 0.005,
    "thresholds": {"min_pr_auc": 0.2, "min_roc_auc": 0.7},
    "evaluation": {"holdout_fraction": 0.2, "target_precision": 0.8},
}

# --- decide: the pure policy ------------------------------------------------------------------------------------


def test_first_model_meeting_thresholds_is_promoted() -> None:
    decision = decide(POLICY, GOOD, None)
    assert decision == Decision(True, decision.reason) and decision.decision == "promoted"
    assert "no champion" in decision.reason


@pytest.mark.parametrize(
    ("metrics", "failing"),
    [({**GOOD, "pr_auc": 0.29}, "pr_auc 0.2900 < min 0.3000"), ({**GOOD, "roc_auc": 0.5}, "roc_auc 0.5000 < min")],
)
def test_first_model_below_a_threshold_is_rejected(metrics: dict, failing: str) -> None:
    decision = decide(POLICY, metrics, None)
    assert not decision.promote and decision.decision == "rejected"
    assert failing in decision.reason


def test_challenger_must_beat_champion_by_min_improvement() -> None:
    assert decide(POLICY, GOOD, {**GOOD, "pr_auc": 0.59}).promote  # +0.01 == min_improvement
    worse = decide(POLICY, GOOD, {**GOOD, "pr_auc": 0.595})  # +0.005 < 0.01
    assert not worse.promote and "min_improvement" in worse.reason
    assert not decide(POLICY, GOOD, {**GOOD, "pr_auc": 0.7}).promote  # champion better


def test_thresholds_apply_even_when_the_champion_is_worse() -> None:
    decision = decide(POLICY, {**GOOD, "roc_auc": 0.6}, {**GOOD, "pr_auc": 0.1, "roc_auc": 0.5})
    assert not decision.promote and "roc_auc" in decision.reason


@pytest.mark.parametrize("bad", [math.nan, None, math.inf])
def test_missing_or_non_finite_challenger_metrics_are_rejected(bad) -> None:
    decision = decide(POLICY, {**GOOD, "pr_auc": bad}, None)
    assert not decision.promote and "not finite" in decision.reason


def test_compared_metric_comes_from_the_policy() -> None:
    by_roc = Policy("roc_auc", 0.0, {}, 0.2, 0.8)
    assert decide(by_roc, {**GOOD, "pr_auc": 0.1}, GOOD).promote  # equal roc_auc, pr_auc ignored
    assert not decide(by_roc, {**GOOD, "roc_auc": 0.89}, GOOD).promote


def test_the_repository_policy_parses() -> None:
    policy = load_policy(POLICY_PATH)
    assert policy.metric == "pr_auc" and set(policy.thresholds) == {"pr_auc", "roc_auc"}
    assert 0 < policy.holdout_fraction < 1 and policy.min_improvement >= 0
    assert parse_policy(RAW_POLICY) == Policy("pr_auc", 0.005, {"pr_auc": 0.2, "roc_auc": 0.7}, 0.2, 0.8)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"extra": 1}, "exactly the keys"),
        ({"metric": "accuracy"}, "metric 'accuracy'"),
        ({"thresholds": {"max_pr_auc": 0.2}}, "min_<metric>"),
        ({"thresholds": {"min_f1": 0.2}}, "min_<metric>"),
        ({"min_improvement": "a lot"}, "min_improvement"),
        ({"thresholds": {"min_pr_auc": 1.5}}, "thresholds.min_pr_auc"),
        ({"evaluation": {"holdout_fraction": 0.2}}, "evaluation needs"),
        ({"version": 2}, "unsupported policy version"),
    ],
)
def test_bad_policies_are_refused(change: dict, message: str) -> None:
    with pytest.raises(PolicyError, match=message.replace("(", r"\(").replace("[", r"\[")):
        parse_policy({**RAW_POLICY, **change})


def test_missing_policy_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="not found"):
        load_policy(tmp_path / "nope.yaml")


# --- the job against MLflow -------------------------------------------------------------------------------------

def _register(profile, shuffle_labels: bool = False, seed: int = 5) -> int:
    return register_model(profile, seed=seed, shuffle_labels=shuffle_labels)["version"]


def _champion(name: str) -> int:
    return int(MlflowClient().get_model_version_by_alias(name, "champion").version)


def _tags(name: str, version: int) -> dict[str, str]:
    return MlflowClient().get_model_version(name, str(version)).tags


def test_gate_promotes_a_good_first_model_and_keeps_it_against_a_worse_one(
    spark: SparkSession, mlflow_store, capsys
) -> None:
    profile, name = mlflow_store, mlflow_store.mlflow["model_name"]
    write_features(features_frame(spark, rows=800), profile)
    assert _register(profile) == 1

    first = promote.main(["--profile", "local"])
    assert result_of(capsys.readouterr().out) == {"job": "promote", **first}
    assert (first["decision"], first["champion_version"], first["champion_version_before"]) == ("promoted", 1, None)
    assert _champion(name) == 1
    tags = _tags(name, 1)
    assert tags["promotion.decision"] == "promoted" and "no champion" in tags["promotion.reason"]
    assert tags["promotion.champion_version_before"] == "none" and tags["promotion.champion_pr_auc"] == "none"
    assert float(tags["promotion.challenger_pr_auc"]) == pytest.approx(first["challenger_metrics"]["pr_auc"])
    assert tags["promotion.decided_at"] and '"metric": "pr_auc"' in tags["promotion.policy"]

    assert promote.main(["--profile", "local"])["decision"] == "unchanged"  # re-running the gate is a no-op

    assert _register(profile, shuffle_labels=True) == 2
    second = promote.main(["--profile", "local"])  # a rejection is a normal outcome, not an error
    assert (second["decision"], second["champion_version"], second["champion_version_before"]) == ("rejected", 1, 1)
    assert _champion(name) == 1
    tags = _tags(name, 2)
    assert tags["promotion.decision"] == "rejected" and tags["promotion.reason"] == second["reason"]
    assert float(tags["promotion.champion_pr_auc"]) == pytest.approx(first["challenger_metrics"]["pr_auc"])
    assert float(tags["promotion.challenger_pr_auc"]) < float(tags["promotion.champion_pr_auc"])
    assert tags["promotion.champion_version_before"] == "1"
    assert second["champion_metrics"] == first["challenger_metrics"]  # the same holdout for both models


def test_relative_rule_rejects_a_challenger_that_is_not_better_enough(
    spark: SparkSession, mlflow_store, tmp_path: Path
) -> None:
    profile, name = mlflow_store, mlflow_store.mlflow["model_name"]
    write_features(features_frame(spark, rows=800), profile)
    _register(profile)
    promote.main(["--profile", "local", "--version", "1"])
    _register(profile, seed=6)  # as good, give or take noise
    strict = tmp_path / "strict.yaml"
    strict.write_text(yaml.safe_dump({**RAW_POLICY, "min_improvement": 0.5, "thresholds": {}}))

    result = promote.main(["--profile", "local", "--policy", str(strict)])
    assert result["decision"] == "rejected" and "min_improvement +0.5000" in result["reason"]
    assert _champion(name) == 1 and _tags(name, 2)["promotion.decision"] == "rejected"


def test_manual_promotion_and_rollback_move_the_alias_and_leave_tags(mlflow_store, capsys) -> None:
    profile, name = mlflow_store, mlflow_store.mlflow["model_name"]
    for seed in (1, 2, 3):
        _register(profile, seed=seed)

    assert promote.main(["--profile", "local", "--version", "1"])["champion_version"] == 1
    assert promote.main(["--profile", "local", "--version", "3"])["champion_version_before"] == 1
    assert _champion(name) == 3
    tags = _tags(name, 3)
    assert (tags["promotion.decision"], tags["promotion.reason"]) == ("promoted", "manual")
    assert (tags["promotion.champion_version_before"], tags["promotion.policy"]) == ("1", "manual")

    rolled = promote.main(["--profile", "local", "--rollback"])
    assert (rolled["decision"], rolled["champion_version"], rolled["champion_version_before"]) == ("rolled_back", 1, 3)
    assert _champion(name) == 1
    assert _tags(name, 3)["promotion.rolled_back_to"] == "1" and _tags(name, 1)["promotion.restored_from"] == "3"

    # v1 replaced nothing: a second rollback fails clearly and leaves the alias alone
    capsys.readouterr()
    with pytest.raises(SystemExit) as stopped:
        promote.main(["--profile", "local", "--rollback"])
    assert stopped.value.code == 2 and "nothing to roll back to" in capsys.readouterr().err
    assert _champion(name) == 1

    # a rolled-back challenger is not re-promoted by the gate
    MlflowClient().set_registered_model_alias(name, "challenger", "3")
    gated = promote.main(["--profile", "local"])
    assert gated["decision"] == "rejected" and "was rolled back" in gated["reason"]
    assert _champion(name) == 1


def test_unknown_version_and_missing_challenger_fail_clearly(mlflow_store, capsys) -> None:
    with pytest.raises(SystemExit) as stopped:
        promote.main(["--profile", "local"])
    assert stopped.value.code == 2 and "no @challenger; run spark_jobs.train" in capsys.readouterr().err

    configure_mlflow(mlflow_store)
    MlflowClient().create_registered_model(mlflow_store.mlflow["model_name"])
    with pytest.raises(SystemExit) as stopped:
        promote.main(["--profile", "local", "--version", "7"])
    assert stopped.value.code == 2 and "has no version 7" in capsys.readouterr().err

    with pytest.raises(SystemExit) as stopped:
        promote.main(["--profile", "local", "--rollback"])
    assert stopped.value.code == 2 and "no @champion" in capsys.readouterr().err


def test_version_and_rollback_are_exclusive(tributary_home) -> None:
    with pytest.raises(SystemExit) as stopped:
        promote.main(["--profile", "local", "--version", "1", "--rollback"])
    assert stopped.value.code == 2
