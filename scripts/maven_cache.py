"""JVM servers' jars from Maven Central, fetched once into the user's cache and keyed by what defines them.

The scripts that run JVM servers on loopback (kafka_broker.py, yarn_cluster.py) take their jars from here, never at
run time from the network: ``make test`` and ``make up`` fetch them first. A directory is
``<cache>/<kind>/<key>``, where the key hashes the POM (and sources) that define it, so a new pin fetches anew and
an old one stays valid; it is complete once ``.complete`` is in it (an interrupted fetch leaves ``<key>.partial``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SETTINGS = REPO_ROOT / "conf" / "jars" / "settings.xml"


def cache_root() -> Path:
    """The user's cache: $TRIBUTARY_CACHE, else $XDG_CACHE_HOME/tributary or ~/.cache/tributary (as the cluster's)."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tributary"
    return Path(os.environ.get("TRIBUTARY_CACHE") or default)


def key(*files: Path) -> str:
    """A short hash of ``files``' names (relative to the repository) and contents."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(REPO_ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _mvn(*args: str) -> None:
    if shutil.which("mvn") is None:
        raise SystemExit("error: Maven (mvn) is required to fetch the JVM servers' jars; install it "
                         "(apt-get install maven)")
    subprocess.run(["mvn", "-q", "-B", "-s", str(SETTINGS), *args], check=True)


def _complete(dest: Path, fill) -> Path:
    """Run ``fill(partial_dir)`` unless ``dest`` is complete, then move the result into place."""
    if (dest / ".complete").is_file():
        return dest
    partial = dest.with_name(dest.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    fill(partial)
    (partial / ".complete").write_text("")
    shutil.rmtree(dest, ignore_errors=True)
    partial.rename(dest)
    return dest


def dependencies(pom: Path, dest: Path) -> Path:
    """The runtime dependencies of ``pom`` (a ``pom``-packaged list of artifacts), transitively, in ``dest``."""
    return _complete(dest, lambda out: _mvn("-f", str(pom), "dependency:copy-dependencies", "-DincludeScope=runtime",
                                            f"-DoutputDirectory={out}"))


def built(project: Path, dest: Path) -> Path:
    """``project`` (a Maven jar project) built, its jar beside its dependencies in ``dest`` (which ones: the POM's
    maven-dependency-plugin configuration). It builds in a copy, so the working tree gets no ``target/`` and two
    checkouts never share one."""

    def fill(out: Path) -> None:
        with tempfile.TemporaryDirectory(prefix="tributary-mvn-") as scratch:
            copy = Path(scratch) / project.name
            shutil.copytree(project, copy, ignore=shutil.ignore_patterns("target"))
            _mvn("-f", str(copy / "pom.xml"), "package", "dependency:copy-dependencies", f"-DoutputDirectory={out}")
            for jar in (copy / "target").glob("*.jar"):
                shutil.copy2(jar, out / jar.name)

    return _complete(dest, fill)
