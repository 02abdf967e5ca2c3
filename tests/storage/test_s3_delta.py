"""Delta over s3a:// on the local clusters' S3 store (the Versity S3 Gateway), from this host, with the pinned jars.

Every Spark application here is its own process and JVM (tests/storage/s3_writer.py), like the ingest job and
the stream on a cluster; they use the kind profile's s3a and LogStore settings with the endpoint pointed at a store
started on loopback by scripts/s3_store.py. ADR 0007 says why concurrent writers are safe; these tests prove it.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tributary.config import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "scripts"))
import s3_store  # noqa: E402

WRITER = Path(__file__).with_name("s3_writer.py")
BUCKET = "tributary-lake"
OURS = "dev.tributary.delta.S3ConditionalPutLogStore"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    try:
        started = s3_store.start(tmp_path_factory.mktemp("s3store"), free_port(), (BUCKET,))
    except FileNotFoundError as exc:
        pytest.fail(str(exc))
    yield started
    started.stop()


def writer(store, action: str, uri: str, *args: str, background: bool = False):
    cmd = [sys.executable, str(WRITER), store.endpoint, store.access_key, store.secret_key, action, uri, *args]
    if background:
        return subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    return result(proc.returncode, proc.stdout, proc.stderr)


def result(code: int, out: str, err: str) -> dict:
    lines = [line for line in out.splitlines() if line.startswith("S3_WRITER ")]
    assert code == 0 and lines, f"writer failed ({code}):\n{out[-2000:]}\n{err[-4000:]}"
    return json.loads(lines[-1].removeprefix("S3_WRITER "))


def test_store_honours_conditional_create(store):
    """The property the LogStore relies on, at the S3 API: If-None-Match: * refuses an existing key."""
    s3 = store.client()
    s3.put_object(Bucket=BUCKET, Key="probe/once", Body=b"1", IfNoneMatch="*")
    with pytest.raises(Exception) as refused:
        s3.put_object(Bucket=BUCKET, Key="probe/once", Body=b"2", IfNoneMatch="*")
    assert "PreconditionFailed" in str(refused.value) or "412" in str(refused.value)
    assert s3.get_object(Bucket=BUCKET, Key="probe/once")["Body"].read() == b"1"


def test_delta_write_merge_read_over_s3a(store):
    out = writer(store, "roundtrip", f"s3a://{BUCKET}/roundtrip")
    assert out == {"rows": 150, "b_rows": 100, "versions": 2}


def test_a_second_application_cannot_overwrite_a_commit(store):
    """Two applications (JVMs) commit the same version: the second is refused by the store's conditional write (the
    client's own existence check is off), with the exception Delta answers by re-checking and retrying."""
    uri = f"s3a://{BUCKET}/ours"
    first = writer(store, "commit", uri, OURS, "first")
    second = writer(store, "commit", uri, OURS, "second")
    assert first == {"refused": None, "kept": "first"}
    assert second == {"refused": "java.nio.file.FileAlreadyExistsException", "kept": "first"}


def test_without_conditional_writes_the_logstore_refuses_to_commit(store):
    """Where the client cannot make a conditional write, the LogStore fails rather than committing unsafely."""
    out = writer(store, "commit", f"s3a://{BUCKET}/unconditional", OURS, "first", "false")
    assert out["refused"] is not None and "FileAlreadyExists" not in out["refused"]


def test_two_applications_committing_to_one_table_lose_nothing(store):
    uri = f"s3a://{BUCKET}/concurrent"
    commits = 8
    # The table exists before the writers race, as bronze does (two writers creating a table at once is refused
    # by Delta itself with ProtocolChangedException: detected, not lost).
    writer(store, "append", uri, "setup", "1")
    procs = [writer(store, "append", uri, name, str(commits), background=True) for name in ("ingest", "stream")]
    for proc in procs:
        out, err = proc.communicate(timeout=900)
        result(proc.returncode, out, err)
    check = subprocess.run(
        [sys.executable, "-c", f"""
import json, sys
sys.path.insert(0, {str(WRITER.parent)!r})
from s3_writer import session
spark = session(*sys.argv[1:4])
df = spark.read.format("delta").load({uri!r})
from delta.tables import DeltaTable
rows = df.groupBy("writer").count().collect()
history = DeltaTable.forPath(spark, {uri!r}).history().orderBy("version").select("userMetadata").collect()
print("S3_WRITER " + json.dumps({{"per_writer": {{r["writer"]: r["count"] for r in rows}},
      "commits": len(history), "by_version": [h["userMetadata"] for h in history],
      "distinct": df.select("writer", "commit", "id").distinct().count()}}))
""", store.endpoint, store.access_key, store.secret_key],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    out = result(check.returncode, check.stdout, check.stderr)
    assert out["per_writer"] == {"setup": 10, "ingest": commits * 10, "stream": commits * 10}
    assert out["distinct"] == (2 * commits + 1) * 10
    assert out["commits"] == 2 * commits + 1  # every append is its own version; none was overwritten
    # They really raced: versions alternate between the writers rather than one running after the other.
    order = [w for w in out["by_version"] if w != "setup"]
    switches = sum(a != b for a, b in zip(order, order[1:]))
    assert switches >= 2, f"the writers did not overlap: {out['by_version']}"
