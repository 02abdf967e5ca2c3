"""Test helper: land generated transactions and ingest them into the current TRIBUTARY_HOME's lake."""

from __future__ import annotations

from typing import Any


def land_and_ingest(rows: int = 600, seed: int = 3, batch_id: str = "b1") -> dict[str, Any]:
    """Run the real generate and ingest entrypoints in-process (the shared SparkSession); return ingest's result."""
    from spark_jobs import generate, ingest

    generate.main(["--profile", "local", "--rows", str(rows), "--seed", str(seed), "--batch-id", batch_id])
    return ingest.main(["--profile", "local", "--batch-id", batch_id])


def load_script(name: str):
    """Import ``scripts/<name>.py`` (scripts are not a package) as a module."""
    import importlib.util
    import sys

    from tributary.config import REPO_ROOT

    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module
