"""``tributary render`` (tributary/cli.py) writes exactly what ``make render`` writes for the profiles it is given,
and nothing for the others."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.k8s.conftest import REPO_ROOT

TRIBUTARY = Path(sys.executable).parent / "tributary"


def files(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def test_render_writes_what_make_render_writes_for_the_profiles_given(rendered, tmp_path):
    specs = files(REPO_ROOT / "docs" / "specs")
    done = subprocess.run([str(TRIBUTARY), "render", "--profile", "kind", "-p", "eks", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eks", "kind"]
    for profile in ("kind", "eks"):
        written = files(tmp_path / profile)
        assert any(name.startswith("sparkapplications/") for name in written), sorted(written)
        assert written == files(rendered / profile), profile
    assert files(REPO_ROOT / "docs" / "specs") == specs  # a user's render leaves the documented specs alone
