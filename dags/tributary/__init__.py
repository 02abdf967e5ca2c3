"""Orchestration helpers for the DAGs in this folder (the launcher). Not a DAG file; see .airflowignore."""
