"""Read the Terraform under terraform/ with python-hcl2 and resolve the simple references the tests need.

`load_module("modules/eks")` merges every .tf file of one module into a `TfModule`: its variables,
outputs, locals, resources, data sources, module calls and terraform blocks. `TfModule.resolve()`
follows `local.x["k"].y` and `var.x.y` references (variables through their defaults, object
variables through the `optional(type, default)` defaults of their type), so a test can assert what
a node group's labels or a bucket's settings *evaluate to*, not only how they are spelled.
Anything else (function calls, conditionals, resource attributes) is returned unchanged.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import hcl2

REPO_ROOT = Path(__file__).resolve().parents[2]
TF_ROOT = REPO_ROOT / "terraform"
MODULES = ("modules/eks", "modules/gke")  # the cloud platforms
CHART = "modules/chart"  # the chart's install, shared by both roots
ENVS = ("envs/eks", "envs/gke")
ALL_MODULES = MODULES + (CHART,) + ENVS

_OPTIONS = hcl2.SerializationOptions(strip_string_quotes=True, with_comments=False, explicit_blocks=False)
_REF_BODY = r'\(?(local|var)\.([A-Za-z0-9_-]+)((?:\.[A-Za-z0-9_-]+|\["[^"\]]+"\])*)\)?'
_REF = re.compile(r"^\$\{" + _REF_BODY + r"\}$")
_INTERPOLATION = re.compile(r"\$\{" + _REF_BODY + r"\}")
_STEP = re.compile(r'\.([A-Za-z0-9_-]+)|\["([^"\]]+)"\]')


def tf_files() -> list[Path]:
    """Every .tf file of the repository's Terraform, in a stable order."""
    return sorted(p for p in TF_ROOT.rglob("*.tf") if ".terraform" not in p.parts)


def parse_file(path: Path) -> dict[str, Any]:
    """Parse one .tf file; string literals come back without their quotes, expressions as `${...}`."""
    with path.open(encoding="utf-8") as f:
        return hcl2.load(f, serialization_options=_OPTIONS)


def unwrap(value: Any) -> Any:
    """`${expr}` -> `expr`; anything else unchanged."""
    if isinstance(value, str) and value.startswith("${") and value.endswith("}"):
        return value[2:-1]
    return value


@dataclass
class TfModule:
    """The merged top-level blocks of one Terraform module directory."""

    path: Path
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    locals: dict[str, Any] = field(default_factory=dict)
    resources: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    data: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    modules: dict[str, dict[str, Any]] = field(default_factory=dict)
    terraform: list[dict[str, Any]] = field(default_factory=list)
    providers: dict[str, dict[str, Any]] = field(default_factory=dict)

    def resource(self, rtype: str, name: str) -> dict[str, Any]:
        assert (rtype, name) in self.resources, f"{self.path.name}: resource {rtype}.{name} not found"
        return self.resources[(rtype, name)]

    def resources_of(self, rtype: str) -> dict[str, dict[str, Any]]:
        return {n: body for (t, n), body in self.resources.items() if t == rtype}

    def required_providers(self) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for block in self.terraform:
            for rp in _as_list(block.get("required_providers", [])):
                found.update(rp)
        return found

    def variable_default(self, name: str) -> Any:
        """The value a variable has when the caller does not set it (object defaults filled in)."""
        assert name in self.variables, f"{self.path.name}: variable {name} not found"
        var = self.variables[name]
        default = var.get("default")
        type_expr = unwrap(var.get("type", ""))
        if isinstance(default, dict) and isinstance(type_expr, str) and type_expr.startswith("object("):
            filled = optional_defaults(type_expr)
            filled.update(default)
            return filled
        return default

    def resolve(self, value: Any, _depth: int = 0) -> Any:
        """Follow local/var references (recursively, into dicts and lists) as far as they go."""
        assert _depth < 20, f"reference cycle while resolving {value!r}"
        if isinstance(value, dict):
            return {self._key(k, _depth): self.resolve(v, _depth + 1) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v, _depth + 1) for v in value]
        if not isinstance(value, str):
            return value
        m = _REF.match(value)
        if not m:
            return _INTERPOLATION.sub(lambda i: self._scalar(i.group(0), _depth), value)
        kind, name, path = m.groups()
        if kind == "local":
            if name not in self.locals:
                return value
            current: Any = self.locals[name]
        else:
            if name not in self.variables:
                return value
            current = self.variable_default(name)
        for attr, key in _STEP.findall(path):
            step = attr or key
            current = self.resolve(current, _depth + 1)
            if not isinstance(current, dict) or step not in current:
                return value
            current = current[step]
        return self.resolve(current, _depth + 1)


    def _scalar(self, ref: str, depth: int) -> str:
        """A reference inside a template: substituted when it resolves to a scalar."""
        resolved = self.resolve(ref, depth + 1)
        if isinstance(resolved, bool):
            return str(resolved).lower()
        return str(resolved) if isinstance(resolved, (str, int, float)) else ref

    def _key(self, key: str, depth: int) -> str:
        resolved = self.resolve(key, depth + 1)
        return resolved if isinstance(resolved, str) else key


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@lru_cache(maxsize=None)
def load_module(rel: str) -> TfModule:
    """Merge every .tf file directly inside terraform/<rel>."""
    mod = TfModule(path=TF_ROOT / rel)
    files = sorted(mod.path.glob("*.tf"))
    assert files, f"no .tf files in {mod.path}"
    for path in files:
        doc = parse_file(path)
        for block in doc.get("variable", []):
            mod.variables.update(block)
        for block in doc.get("output", []):
            mod.outputs.update(block)
        for block in doc.get("locals", []):
            mod.locals.update(block)
        for block in doc.get("resource", []):
            for rtype, named in block.items():
                for name, body in named.items():
                    mod.resources[(rtype, name)] = body
        for block in doc.get("data", []):
            for dtype, named in block.items():
                for name, body in named.items():
                    mod.data[(dtype, name)] = body
        for block in doc.get("module", []):
            mod.modules.update(block)
        mod.terraform.extend(doc.get("terraform", []))
        for block in doc.get("provider", []):
            mod.providers.update(block)
    return mod


def optional_defaults(type_expr: str) -> dict[str, Any]:
    """`object({a = optional(number, 0), b = optional(list(string), ["x"])})` -> {"a": 0, "b": ["x"]}.

    Attributes without a default (plain types, or `optional(t)`) map to None.
    """
    inner = type_expr[len("object(") : -1].strip()
    assert inner.startswith("{") and inner.endswith("}"), f"not an object type: {type_expr}"
    result: dict[str, Any] = {}
    for part in _split_top_level(inner[1:-1]):
        name, _, spec = part.partition("=")
        name, spec = name.strip(), spec.strip()
        if not name:
            continue
        default = None
        if spec.startswith("optional("):
            args = _split_top_level(spec[len("optional(") : -1])
            if len(args) == 2:
                default = _hcl_literal(args[1])
        result[name] = default
    return result


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not nested in (), [], {} or a string."""
    parts, depth, current, in_string = [], 0, [], False
    for i, ch in enumerate(text):
        if ch == '"' and (i == 0 or text[i - 1] != "\\"):
            in_string = not in_string
        elif not in_string and ch in "([{":
            depth += 1
        elif not in_string and ch in ")]}":
            depth -= 1
        elif not in_string and ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    if "".join(current).strip():
        parts.append("".join(current))
    return [p.strip() for p in parts]


def _hcl_literal(text: str) -> Any:
    """A literal default of an optional() attribute: numbers, bools, strings, lists and maps of those."""
    text = text.strip()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def statements(policy_document: dict[str, Any]) -> list[dict[str, Any]]:
    """The statements of an aws_iam_policy_document, static and dynamic ones."""
    found = list(policy_document.get("statement", []))
    for dyn in policy_document.get("dynamic", []):
        if "statement" in dyn:
            found.extend(dyn["statement"].get("content", []))
    return found
