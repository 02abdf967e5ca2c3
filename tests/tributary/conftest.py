"""The renderer's tests share the Kubernetes tests' tools and their one offline render (tests/k8s/conftest.py)."""

from tests.k8s.conftest import rendered, tools  # noqa: F401  (fixtures)
