"""Entrypoint plumbing: templated empty flags mean "not set"; a bad profile is a usage error naming the fix."""

from __future__ import annotations

import pytest

from spark_jobs.cli import job_parser, optional, parse_job_args


def test_optional_empty_is_none_and_values_convert():
    parser = job_parser("x")
    parser.add_argument("--version", type=optional(int))
    assert parser.parse_args(["--version="]).version is None
    assert parser.parse_args(["--version=3"]).version == 3
    with pytest.raises(SystemExit):
        parser.parse_args(["--version=three"])


def test_unknown_profile_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        parse_job_args(job_parser("x"), ["--profile", "nope"])
    assert exc.value.code == 2
    assert "unknown profile 'nope'" in capsys.readouterr().err
