"""Shared plumbing for job entrypoints: the ``--profile`` switch, logging and the session.

Every job's ``main(argv)`` does::

    parser = job_parser(__doc__)
    parser.add_argument(...)            # the job's own flags
    args, profile = parse_job_args(parser, argv, JOB)   # JOB = get_job("<job>"): its datasets by role
    spark = build_session(profile, "tributary-<job>")
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any, Callable, Sequence

from tributary.config import ConfigError, Profile, load_profile
from tributary.registry import NO_RETRY_EXIT, Job


def job_parser(doc: str | None) -> argparse.ArgumentParser:
    """An argument parser that already knows ``--profile``."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", help="profile name under conf/profiles (default: $TRIBUTARY_PROFILE or local)")
    return parser


def optional(convert: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse ``type`` for which an empty value means "not set" (None).

    Orchestrators pass templated flags as ``--flag=value``; an unset Airflow param renders as ``--flag=``.
    """

    def parse(text: str) -> Any:
        return None if text.strip() == "" else convert(text)

    parse.__name__ = getattr(convert, "__name__", "value")
    return parse


def batch_id_arg(text: str) -> str:
    """An argparse ``type`` for ``--batch-id``: empty (every batch), or one folder name; anything else (a path, a
    space, a typo'd quote) is a usage error, exit status 2, which Airflow does not retry."""
    from spark_jobs.transforms.schema import BATCH_ID

    if text and not BATCH_ID.match(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a landing batch id: letters, digits, '.', '_' or '-', at most 100, starting with a "
            "letter or digit (leave it empty to ingest every landed batch)")
    return text


def parse_job_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None,
                   job: Job | None = None) -> tuple[argparse.Namespace, Profile]:
    """Parse flags and load the profile; a bad profile exits 2 with the reason, like a bad flag. For a registered
    ``job`` the profile's catalog holds only the datasets conf/jobs.yaml declares for it (``Job.scoped``)."""
    if not logging.getLogger().handlers:  # a host process (pytest, Airflow) that configured logging keeps its own
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parser.parse_args(argv)
    try:
        profile = load_profile(args.profile)
    except ConfigError as exc:
        parser.error(str(exc))
    return args, (job.scoped(profile) if job else profile)


def emit_result(job: str, result: dict[str, Any]) -> None:
    """Log a job's result and print it as one JSON line prefixed ``TRIBUTARY_RESULT`` for callers to pick up."""
    logging.getLogger(f"spark_jobs.{job}").info("%s result: %s", job, result)
    print("TRIBUTARY_RESULT " + json.dumps({"job": job, **result}, default=str), flush=True)


def fail(message: str, retry: bool = True) -> None:
    """Stop a job with a clear message on stderr. ``retry=False`` where a retry would fail the same way (wrong input
    or arguments): it exits with ``NO_RETRY_EXIT``, and Airflow fails the task at once instead of retrying."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(1 if retry else NO_RETRY_EXIT)
