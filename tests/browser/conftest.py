"""Browser tests: Playwright for Python driving Debian's Chromium (never a downloaded browser)
against real nodes. Without /usr/bin/chromium they skip with the reason printed, unless
CAFX_REQUIRE_BROWSER=1 (CI), where that is a failure."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright

from gateway.demo import DEMO_PASSWORD, NodePlan, plan_federation

from ..e2e.nodes import Node, running

CHROMIUM = Path(os.environ.get("CAFX_CHROMIUM", "/usr/bin/chromium"))
REQUIRE_BROWSER = os.environ.get("CAFX_REQUIRE_BROWSER") == "1"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        reason = f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
        if REQUIRE_BROWSER:
            pytest.fail(f"{reason}, and CAFX_REQUIRE_BROWSER=1")
        print(f"skipping: {reason}")  # noqa: T201 - the printed reason the house rules ask for
        pytest.skip(reason)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture(params=["never"])
async def federation(
    tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[dict[str, Node]]:
    """Camden and Hackney, real nodes with real certificates; no auto-approval: lead contacts decide.
    The parameter is Hackney's holder-side approval policy (CAFX_DISCLOSURE_APPROVAL)."""
    camden, hackney = plan_federation(tmp_path)[:2]
    policy = {"disclosure_approval": request.param}
    hackney = NodePlan(hackney.borough, hackney.folder, hackney.settings.model_copy(update=policy))
    async with running((camden, hackney)) as nodes:
        yield nodes


async def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)


_ACCESSIBILITY = """() => {
  const problems = [];
  if (!document.documentElement.lang) problems.push('no lang attribute');
  const h1 = document.querySelectorAll('h1').length;
  if (h1 !== 1) problems.push(`${h1} h1 elements`);
  const first = document.querySelector('a[href], button, input:not([type=hidden]), select, textarea');
  if (!first || !first.matches('a.skip-link[href="#main"]') || !document.getElementById('main'))
    problems.push('the first focusable element is not a skip link to #main');
  for (const field of document.querySelectorAll('input, select, textarea')) {
    if (field.type === 'hidden') continue;
    const labelled = (field.id && document.querySelector(`label[for="${field.id}"]`))
      || field.getAttribute('aria-label') || field.closest('label');
    if (!labelled) problems.push(`unlabelled ${field.tagName} ${field.name}`);
  }
  for (const button of document.querySelectorAll('button, a')) {
    if (!button.textContent.trim() && !button.getAttribute('aria-label'))
      problems.push(`${button.tagName} without a name`);
  }
  for (const table of document.querySelectorAll('table')) {
    if (!table.querySelector('th')) problems.push('table without headers');
  }
  return problems;
}"""


async def accessible(page: Page, name: str, *, tab: bool = False) -> None:
    """The basics checked on every page, then a full-page screenshot kept as a test artefact.
    With `tab` (a freshly loaded page), the first Tab must reach the skip link."""
    problems: list[str] = await page.evaluate(_ACCESSIBILITY)
    assert problems == [], f"{name}: {problems}"
    if tab:
        await page.keyboard.press("Tab")
        focused: Any = await page.evaluate("() => document.activeElement.className")
        assert "skip-link" in str(focused), f"{name}: first Tab reached {focused!r}"
        await page.keyboard.press("Shift+Tab")
    await screenshot(page, name)


async def sign_in(page: Page, node: Node, username: str) -> None:
    await page.goto(node.plan.api_url + "/console/")
    await page.get_by_role("button", name="Sign in with your borough account").click()
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(DEMO_PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(re.compile(r".*/console/queue.*"))


async def sign_out(page: Page) -> None:
    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url(re.compile(r".*/console/sign-in.*"))
