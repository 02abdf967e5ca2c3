"""Generate the Inputs/Outputs tables of each Terraform module README from the .tf files.

The tables live between `<!-- BEGIN_TF_DOCS -->` and `<!-- END_TF_DOCS -->` in
terraform/<module>/README.md; the prose around them is hand-written. `test_shape.py` fails when a
table is out of date. Regenerate with:

    uv run python -m tests.terraform.tfdocs          # rewrite the tables
    uv run python -m tests.terraform.tfdocs --check  # exit 1 if any is stale
"""

from __future__ import annotations

import json
import sys
from typing import Any

from tests.terraform.hcl import ALL_MODULES, TF_ROOT, load_module, unwrap

BEGIN = "<!-- BEGIN_TF_DOCS -->"
END = "<!-- END_TF_DOCS -->"


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _code(text: str) -> str:
    return f"`{_cell(text)}`" if text != "" else ""


def _default(var: dict[str, Any]) -> str:
    if "default" not in var:
        return "n/a"
    value = var["default"]
    if isinstance(value, str) and not value.startswith("${"):
        return _code(json.dumps(value))
    if value is None:
        return _code("null")
    return _code(json.dumps(value) if not isinstance(value, str) else unwrap(value))


def render(rel: str) -> str:
    """The generated block (markers included) for terraform/<rel>."""
    mod = load_module(rel)
    lines = [BEGIN, "## Inputs", ""]
    lines += ["| Name | Description | Type | Default | Required |", "|------|-------------|------|---------|:--------:|"]
    for name in sorted(mod.variables):
        var = mod.variables[name]
        required = "yes" if "default" not in var else "no"
        lines.append(
            f"| `{name}` | {_cell(var.get('description', ''))} | {_code(unwrap(var.get('type', '')))} "
            f"| {_default(var)} | {required} |"
        )
    lines += ["", "## Outputs", "", "| Name | Description |", "|------|-------------|"]
    for name in sorted(mod.outputs):
        lines.append(f"| `{name}` | {_cell(mod.outputs[name].get('description', ''))} |")
    lines.append(END)
    return "\n".join(lines)


def updated_readme(rel: str) -> tuple[str, str]:
    """(current README text, README text with a fresh generated block)."""
    path = TF_ROOT / rel / "README.md"
    current = path.read_text(encoding="utf-8")
    start, end = current.find(BEGIN), current.find(END)
    if start < 0 or end < start:
        raise SystemExit(f"{path}: add the {BEGIN} / {END} markers where the tables belong")
    return current, current[:start] + render(rel) + current[end + len(END) :]


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for rel in ALL_MODULES:
        current, fresh = updated_readme(rel)
        if current != fresh:
            stale.append(rel)
            if not check:
                (TF_ROOT / rel / "README.md").write_text(fresh, encoding="utf-8")
    if check and stale:
        print("stale Terraform README tables: " + ", ".join(stale), file=sys.stderr)
        print("regenerate with: uv run python -m tests.terraform.tfdocs", file=sys.stderr)
        return 1
    for rel in stale:
        print(f"updated terraform/{rel}/README.md")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
