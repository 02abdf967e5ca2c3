"""Start or stop an S3-compatible store on loopback: the Versity S3 Gateway, the object store of the local clusters.

The binary is the one k8s/cluster/build.sh builds from its Go module (``make cluster-build``), at the version
pinned in k8s/versions.env. It serves a directory over the S3 API (one sub-directory per bucket) with one root key
pair, and supports conditional writes (``If-None-Match: *``), which Delta's commits on S3 rely on (ADR 0007).

    python scripts/s3_store.py start [--state var/s3store] [--port 9000] [--bucket tributary-lake ...]
    python scripts/s3_store.py stop  [--state var/s3store]

``start`` prints the endpoint and the key pair (also written to ``<state>/store.json``); Spark reaches it with the
s3a settings of the kind profile and ``spark.hadoop.fs.s3a.endpoint`` pointing here.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def versitygw_binary() -> Path:
    """The pinned build; fails with how to build it."""
    pins = dict(
        line.split("=", 1)
        for line in (REPO_ROOT / "k8s" / "versions.env").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    cache = Path(os.environ.get("TRIBUTARY_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tributary")
    binary = cache / "cluster" / f"versitygw-{pins['VERSITYGW_VERSION']}" / "bin" / "versitygw"
    if not binary.is_file():
        raise FileNotFoundError(f"{binary} is missing: run `k8s/cluster/build.sh versitygw` (make cluster-build)")
    return binary


@dataclass
class Store:
    """A running store: its endpoint, key pair and PID."""

    endpoint: str
    access_key: str
    secret_key: str
    pid: int
    state: str

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key, region_name="us-east-1")

    def stop(self) -> None:
        stop(Path(self.state))


def start(state: Path, port: int = 9000, buckets: tuple[str, ...] = (), timeout: float = 60.0) -> Store:
    """Start the gateway on 127.0.0.1:<port> over ``<state>/data``; create ``buckets``; wait until it answers."""
    stop(state)
    data = state / "data"
    data.mkdir(parents=True, exist_ok=True)
    access, secret = "tributary", secrets.token_urlsafe(24)
    log = (state / "versitygw.log").open("ab")
    env = {**os.environ, "ROOT_ACCESS_KEY_ID": access, "ROOT_SECRET_ACCESS_KEY": secret}
    proc = subprocess.Popen(
        [str(versitygw_binary()), "--port", f"127.0.0.1:{port}", "--health", "/health", "posix", str(data)],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )  # fmt: skip
    store = Store(f"http://127.0.0.1:{port}", access, secret, proc.pid, str(state))
    (state / "store.json").write_text(json.dumps(asdict(store), indent=2))
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"versitygw exited ({proc.returncode}); see {state / 'versitygw.log'}")
        try:
            with urllib.request.urlopen(f"{store.endpoint}/health", timeout=2):
                break
        except OSError:
            if time.monotonic() > deadline:
                stop(state)
                raise RuntimeError(f"versitygw did not answer on {store.endpoint} within {timeout:.0f}s")
            time.sleep(0.3)
    client = store.client()
    for bucket in buckets:
        client.create_bucket(Bucket=bucket)
    return store


def stop(state: Path) -> None:
    """Stop the store recorded under ``state`` (by PID, checked against its command line)."""
    record = state / "store.json"
    if not record.exists():
        return
    pid = json.loads(record.read_text())["pid"]
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        cmdline = b""
    if b"versitygw" in cmdline:
        os.killpg(pid, signal.SIGTERM)
        for _ in range(50):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            os.killpg(pid, signal.SIGKILL)
    record.unlink()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("--state", type=Path, default=REPO_ROOT / "var" / "s3store")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--bucket", action="append", default=[], help="bucket to create (repeatable)")
    args = parser.parse_args(argv)
    if args.action == "stop":
        stop(args.state)
        return 0
    try:
        store = start(args.state, args.port, tuple(args.bucket))
    except (FileNotFoundError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(asdict(store), indent=2))
    print(f"stop with: python {sys.argv[0]} stop --state {args.state}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
