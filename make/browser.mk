# Headless Chromium for the browser tests (issue 12): Debian's package, driven by Playwright (uv.lock, dev group),
# which cannot download its own browser here. tests/services/test_ui.py and the run report's test use it.

.PHONY: browser

browser: ## install Debian's Chromium for the browser tests unless it is there (apt; root)
	@scripts/browser.sh

TEST_PREREQS += browser
