"""What a person does in Airflow's and MLflow's UIs, as Playwright page objects over headless Chromium
(tests/browser.py). Locators are the ones a user sees or the UIs' own test ids (Airflow 3's React UI tags its
trigger form's fields ``element_<param>`` and its grid cells ``grid-<run id>-<task id>``); every wait has a deadline
and says what it last saw when it runs out."""

from __future__ import annotations

import re
import time
from typing import Any, Mapping
from urllib.parse import quote

from tests.browser import screenshot

FINISHED = {"success", "failed", "upstream_failed", "skipped", "removed"}
STATE_LINE = re.compile(r"^State:\s*(.+)$", re.MULTILINE)


class AirflowUI:
    """Airflow 3's UI, logged in once (``login``); each method starts from a page a user would open."""

    def __init__(self, page, url: str):
        self.page = page
        self.url = url.rstrip("/")

    def login(self, user: str, password: str) -> None:
        """Sign in on the login form, as `make up` prints the credentials."""
        page = self.page
        page.goto(f"{self.url}/auth/login")
        page.get_by_role("textbox", name="username").fill(user)
        page.get_by_label("password").fill(password)
        screenshot(page, "01-airflow-login")
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(lambda url: "/login" not in url, timeout=30_000)

    def open_dag(self, dag_id: str) -> None:
        """The DAG's page: its grid on the left, the overview beside it."""
        self.page.goto(f"{self.url}/dags/{dag_id}")
        self.page.get_by_role("button", name="Trigger").wait_for(timeout=30_000)

    def open_trigger_form(self, dag_id: str):
        """Click Trigger on the DAG's page; the form's dialog, as it opens."""
        self.open_dag(dag_id)
        self.page.get_by_role("button", name="Trigger").click()
        dialog = self.page.get_by_role("dialog")
        dialog.get_by_test_id("trigger-dag-submit").wait_for(timeout=30_000)
        return dialog

    def form_errors(self, dialog) -> list[str]:
        """The form's visible validation messages (the fields' error texts, ``aria-invalid`` fields)."""
        errors = dialog.locator('[data-part="error-text"], [aria-invalid="true"]')
        return [errors.nth(i).inner_text() or errors.nth(i).get_attribute("name") or "invalid"
                for i in range(errors.count()) if errors.nth(i).is_visible()]

    def submit(self, dialog, shot: str | None = None) -> dict[str, Any]:
        """Press the form's Trigger button; the run Airflow created, as its API answered the UI."""
        button = dialog.get_by_test_id("trigger-dag-submit")
        if shot:
            screenshot(self.page, shot)
        with self.page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/dagRuns"),
                                       timeout=60_000) as answer:
            button.click()
        response = answer.value
        assert response.ok, f"the trigger was refused: {response.status} {response.text()[:2000]}"
        return response.json()

    def trigger(self, dag_id: str, typed: Mapping[str, str] | None = None, shot: str | None = None) -> dict:
        """Open the trigger form, type ``typed`` into its fields (param name -> text), press Trigger; the run."""
        dialog = self.open_trigger_form(dag_id)
        for name, text in (typed or {}).items():
            dialog.locator(f'input[name="element_{name}"]').fill(text)
        return self.submit(dialog, shot)

    def grid_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        """Each task's state in the run's column of the DAG's grid, read from the tooltip a cell shows on hover
        (``State: Success``), lower-cased with underscores as Airflow names states."""
        self.open_dag(dag_id)
        cells = self.page.locator(f'a[id^="grid-{run_id}-"]')
        cells.first.wait_for(timeout=30_000)
        tasks = {cell.get_attribute("id").removeprefix(f"grid-{run_id}-"): cell for cell in cells.all()}
        return {task: self._hovered_state(cell, task) for task, cell in tasks.items()}

    def _hovered_state(self, cell, task: str, tries: int = 4) -> str:
        """The state in the tooltip of one grid cell. The grid re-renders as it refreshes, which can close a
        tooltip before it opens: hover again, a few times."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        tip = self.page.locator('[data-scope="tooltip"][data-part="content"]').filter(has_text=f"Task ID: {task}")
        for attempt in range(tries):
            self.page.mouse.move(0, 0)
            cell.hover()
            try:
                tip.first.wait_for(timeout=5_000)
            except PlaywrightTimeout:
                if attempt == tries - 1:
                    raise
                continue
            found = STATE_LINE.search(tip.first.inner_text())
            self.page.mouse.move(0, 0)
            return found.group(1).strip().lower().replace(" ", "_") if found else "unknown"
        raise AssertionError("unreachable")

    def watch_grid(self, dag_id: str, run_id: str, timeout: float, poll: float = 15) -> dict[str, str]:
        """Reload the DAG's grid until every task of the run is finished; the states (the deadline fails the test
        with the states last seen)."""
        deadline = time.monotonic() + timeout
        states: dict[str, str] = {}
        while time.monotonic() < deadline:
            states = self.grid_states(dag_id, run_id)
            if states and set(states.values()) <= FINISHED:
                return states
            time.sleep(poll)
        raise AssertionError(f"{dag_id} run {run_id} did not finish in {timeout:.0f}s; the grid showed {states}")

    def run_state(self, dag_id: str, run_id: str) -> str:
        """The state badge on the run's page."""
        self.page.goto(f"{self.url}/dags/{dag_id}/runs/{quote(run_id, safe='')}")
        badge = self.page.get_by_test_id("state-badge").first
        badge.wait_for(timeout=30_000)
        return badge.get_attribute("aria-label") or badge.inner_text().strip().lower()

    def task_log(self, dag_id: str, run_id: str, task_id: str, search: str, timeout: float = 60) -> str:
        """Open the task instance's page (its log tab, as a click on its grid cell does), type ``search`` into the
        log's search box and wait for a line to match; the log's text as shown (the deadline fails the test with
        it)."""
        self.page.goto(f"{self.url}/dags/{dag_id}/runs/{quote(run_id, safe='')}/tasks/{task_id}")
        self.page.get_by_test_id("log-search-input").fill(search)
        log = self.page.get_by_test_id("virtualized-list")
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = log.inner_text() if log.count() else ""
            if search in text:
                return text
            time.sleep(1)
        raise AssertionError(f"{task_id}'s log never showed {search!r}; it showed:\n{text[-3000:]}")


class MlflowUI:
    """MLflow 3's UI (no login locally): the registered model, a version's page, a run's artifacts."""

    def __init__(self, page, url: str):
        self.page = page
        self.url = url.rstrip("/")

    def open_model(self, model: str) -> None:
        """The registered model's page: its versions, with their tags and aliases."""
        self.page.goto(f"{self.url}/#/models/{model}")
        self.page.get_by_text("Version 1", exact=True).first.wait_for(timeout=60_000)

    def version(self, model: str, version: str) -> dict[str, Any]:
        """A version's page: the aliases it shows (``@ champion`` tags) and the page's text (its description)."""
        self.page.goto(f"{self.url}/#/models/{model}/versions/{version}")
        self.page.get_by_text(f"Version {version}", exact=True).first.wait_for(timeout=60_000)
        self.page.get_by_text("Source Run", exact=True).wait_for(timeout=30_000)
        tags = self.page.locator('[role="status"][title]')
        return {"aliases": sorted(tags.nth(i).get_attribute("title") for i in range(tags.count())),
                "text": self.page.locator("body").inner_text()}

    def run_plots(self, model: str, version: str, run_id: str, plot: str = "roc_curve.png") -> list[str]:
        """From a version's page, follow its source run to the run's Artifacts tab and open ``plots/``; the plots
        listed there, once ``plot`` shows as an image."""
        self.version(model, version)
        self.page.locator(f'a[href*="/runs/{run_id}"]').first.click()
        self.page.get_by_role("tab", name="Artifacts").click()
        self.page.get_by_text("plots", exact=True).first.click()
        listed = self.page.get_by_text(re.compile(r"^[a-z_]+\.png$"))
        listed.first.wait_for(timeout=30_000)
        names = sorted(set(listed.all_inner_texts()))
        self.page.get_by_text(plot, exact=True).first.click()
        image = self.page.locator('img[src^="blob:"], img[src^="data:image/png"]').first
        image.wait_for(timeout=30_000)
        assert image.evaluate("i => i.complete && i.naturalWidth > 100"), f"{plot} did not render"
        return names
