"""Airflow 3's public REST API (``/api/v2``), as a user or a CI job drives it: a JWT from the auth manager's
``/auth/token``, then DAGs unpaused, runs triggered, and their task instances and logs read. Standard library
only, so it runs anywhere the DAG files do not need to."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

FINISHED = {"success", "failed"}


class AirflowAPIError(RuntimeError):
    """A call was refused or Airflow reported an error; the message holds the method, the path and the reply."""


@dataclass
class AirflowAPI:
    base_url: str
    username: str
    password: str
    _token: str = field(default="", repr=False)

    def token(self) -> str:
        if not self._token:
            reply = self._request("POST", "/auth/token", {"username": self.username, "password": self.password},
                                  auth=False)
            self._token = reply["access_token"]
        return self._token

    def _request(self, method: str, path: str, body: dict | None = None, auth: bool = True) -> Any:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token()}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base_url.rstrip("/") + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                text = resp.read().decode()
        except urllib.error.HTTPError as exc:
            raise AirflowAPIError(f"{method} {path}: HTTP {exc.code}: {exc.read().decode()[:2000]}") from exc
        return json.loads(text) if text else None

    # --- DAGs and runs --------------------------------------------------------------------------------------------
    def wait_for_dag(self, dag_id: str, timeout: float = 300) -> dict:
        """The DAG once the DAG processor has parsed it (a fresh metadata DB knows no DAG at first)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                dag = self._request("GET", f"/api/v2/dags/{dag_id}")
            except AirflowAPIError as exc:
                if "HTTP 404" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(3)
                continue
            if dag.get("has_import_errors"):
                raise AirflowAPIError(f"{dag_id} has import errors; see GET /api/v2/importErrors")
            return dag

    def unpause(self, dag_id: str) -> None:
        self._request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})

    def trigger(self, dag_id: str, logical_date: datetime, conf: dict[str, Any]) -> str:
        """A manual run for the interval that ends at ``logical_date``; returns its run id."""
        run = self._request("POST", f"/api/v2/dags/{dag_id}/dagRuns",
                            {"logical_date": logical_date.isoformat(), "conf": conf})
        return run["dag_run_id"]

    def clear_tasks(self, dag_id: str, run_id: str, *task_ids: str) -> list[dict[str, Any]]:
        """Clear tasks of a run, finished or not, as the UI's "Clear" does (downstream tasks untouched): the run goes
        back to queued and each task runs again as its next try. Returns the cleared task instances."""
        reply = self._request("POST", f"/api/v2/dags/{dag_id}/clearTaskInstances",
                              {"dag_run_id": run_id, "task_ids": list(task_ids), "dry_run": False,
                               "only_failed": False, "reset_dag_runs": True})
        return reply["task_instances"]

    def run_state(self, dag_id: str, run_id: str) -> str:
        return self._request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}")["state"]

    def wait_run(self, dag_id: str, run_id: str, timeout: float, on_poll=None) -> str:
        """Poll until the run succeeded or failed (or ``timeout``); returns the last state seen."""
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            state = self.run_state(dag_id, run_id)
            if on_poll:
                on_poll(state)
            if state in FINISHED:
                break
            time.sleep(5)
        return state

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        reply = self._request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}"
                                     "/taskInstances?limit=100")
        return reply["task_instances"]

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int) -> str:
        """The task's log as text (the driver's log is streamed into it by the operator)."""
        path = (f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}/taskInstances/{task_id}"
                f"/logs/{try_number}?full_content=true")
        reply = self._request("GET", path)
        content = reply.get("content", "")
        if isinstance(content, list):  # structured log lines
            return "\n".join(line.get("event", "") if isinstance(line, dict) else str(line) for line in content)
        return str(content)
