"""The external static checks over terraform/: `tofu fmt -check` and checkov.

Both tools are installed by `make tools` (scripts/setup_tools.sh): OpenTofu into .tools/bin, checkov
into the separate .venv-tools. A missing tool fails these tests; it never skips them. Each check
also runs once against a deliberately bad input, so a tool that silently checks nothing fails too.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.terraform.hcl import REPO_ROOT, TF_ROOT, tf_files

TOFU = REPO_ROOT / ".tools" / "bin" / "tofu"
CHECKOV = REPO_ROOT / ".venv-tools" / "bin" / "checkov"
CHECKOV_CONFIG = REPO_ROOT / ".checkov.yaml"
SKIP_COMMENT = re.compile(r"#\s*checkov:skip=([A-Z0-9_]+)(?::(.*))?")


def _require(tool: Path) -> Path:
    if not (tool.is_file() and os.access(tool, os.X_OK)):
        pytest.fail(f"{tool.relative_to(REPO_ROOT)} is missing: run `make tools` (scripts/setup_tools.sh) first")
    return tool


def _tool_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("TF_CLI_CONFIG_FILE", None)  # a user's CLI config has no say in formatting
    env.update(TF_IN_AUTOMATION="1", CHECKPOINT_DISABLE="1", LOG_LEVEL="WARNING")
    return env


def _tofu(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(_require(TOFU)), *args], cwd=REPO_ROOT, env=_tool_env(), capture_output=True, text=True, timeout=120
    )


def _checkov(directory: Path) -> dict:
    proc = subprocess.run(
        [
            str(_require(CHECKOV)),
            "--config-file",
            str(CHECKOV_CONFIG),
            "--directory",
            str(directory),
            "--framework",
            "terraform",
            "--output",
            "json",
        ],
        cwd=REPO_ROOT,
        env=_tool_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.stdout.strip(), f"checkov printed no report (rc={proc.returncode}):\n{proc.stderr[-3000:]}"
    report = json.loads(proc.stdout)
    # One framework gives one report; several give a list of them.
    reports = report if isinstance(report, list) else [report]
    (tf_report,) = [r for r in reports if r.get("check_type") == "terraform"]
    return tf_report


def test_tofu_fmt_check_passes_on_terraform() -> None:
    proc = _tofu("fmt", "-check", "-recursive", "-diff", "terraform")
    assert proc.returncode == 0, f"tofu fmt -check found unformatted files (fix: make tf-fmt):\n{proc.stdout}{proc.stderr}"


def test_tofu_fmt_check_rejects_unformatted_code(tmp_path: Path) -> None:
    (tmp_path / "bad.tf").write_text('variable "x" {\ntype=string\n  description    = "x"\n}\n')
    proc = _tofu("fmt", "-check", str(tmp_path))
    assert proc.returncode != 0, "tofu fmt -check accepted badly formatted code"


def test_checkov_finds_no_failed_checks() -> None:
    report = _checkov(TF_ROOT)
    summary = report["summary"]
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']}:{c['file_line_range']})"
        for c in report["results"]["failed_checks"]
    ]
    assert not failed, "checkov failed checks:\n" + "\n".join(failed)
    assert summary["parsing_errors"] == 0, f"checkov could not parse some files: {summary}"
    # It really looked at our resources (buckets, IAM, clusters, databases).
    assert summary["passed"] >= 150, f"checkov passed suspiciously few checks: {summary}"
    for skipped in report["results"]["skipped_checks"]:
        reason = (skipped.get("check_result") or {}).get("suppress_comment", "")
        assert len(reason) >= 20, f"{skipped['check_id']} on {skipped['resource']} is skipped without a justification"


def test_checkov_flags_an_insecure_bucket(tmp_path: Path) -> None:
    (tmp_path / "main.tf").write_text(
        'resource "aws_s3_bucket" "open" {\n  bucket = "tributary-test-open"\n}\n'
        'resource "aws_s3_bucket_public_access_block" "open" {\n'
        "  bucket                  = aws_s3_bucket.open.id\n"
        "  block_public_acls       = false\n"
        "  block_public_policy     = false\n"
        "  ignore_public_acls      = false\n"
        "  restrict_public_buckets = false\n"
        "}\n"
    )
    report = _checkov(tmp_path)
    failed_ids = {c["check_id"] for c in report["results"]["failed_checks"]}
    assert {"CKV_AWS_53", "CKV_AWS_54"} <= failed_ids, f"checkov missed the public bucket: {sorted(failed_ids)}"


def test_every_checkov_skip_is_justified_inline() -> None:
    skips = []
    for path in tf_files():
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            m = SKIP_COMMENT.search(line)
            if m:
                skips.append((path.relative_to(REPO_ROOT), lineno, m.group(1), (m.group(2) or "").strip()))
    assert skips, "expected the documented inline skips (e.g. replication of the access-log bucket)"
    unjustified = [f"{p}:{n} {check}" for p, n, check, reason in skips if len(reason) < 20]
    assert not unjustified, "checkov skips need a reason after the id:\n" + "\n".join(unjustified)
    # Other frameworks may skip their own checks in .checkov.yaml; Terraform checks are never skipped there.
    config = yaml.safe_load(CHECKOV_CONFIG.read_text(encoding="utf-8")) or {}
    wholesale = config.get("skip-check") or []
    wholesale = wholesale.split(",") if isinstance(wholesale, str) else wholesale
    terraform_ids = [c for c in wholesale if re.match(r"^CKV2?_(AWS|GCP|TF)_", str(c).strip())]
    assert not terraform_ids, f".checkov.yaml skips Terraform checks wholesale: {terraform_ids}"
