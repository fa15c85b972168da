"""What Chromium itself does with the console and another website (Fetch Metadata, SameSite=Lax):
a link on another site opens no console page and writes nothing in the lead contact's name; a
sign-in through an identity provider on another site still lands on the queue."""

from __future__ import annotations

import contextlib
import html
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiohttp import web
from playwright.async_api import Browser
from sqlalchemy import select

from gateway.demo import DEMO_PASSWORD, plan_federation
from gateway.demo._federation import free_port
from gateway.storage._tables import audit_entries

from ..e2e.nodes import Node, running, seed
from .conftest import accessible, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]


@pytest.fixture
async def camden(tmp_path: Path) -> AsyncIterator[Node]:
    async with running(plan_federation(tmp_path)[:1]) as nodes:
        yield next(iter(nodes.values()))


@contextlib.asynccontextmanager
async def _another_site(body: Callable[[], str]) -> AsyncIterator[str]:
    """A page on another site (`localhost`, where the node is `127.0.0.1`); its address."""
    port = free_port()

    async def page(_: web.Request) -> web.Response:
        return web.Response(text=body(), content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "localhost", port).start()
    try:
        yield f"http://localhost:{port}/"
    finally:
        await runner.cleanup()


async def _audited(node: Node, subject: str) -> list[str]:
    rows = await node.engine_rows(
        select(audit_entries.c.action)
        .where(audit_entries.c.subject == subject)
        .order_by(audit_entries.c.sequence)
    )
    return [row.action for row in rows]


async def test_a_link_on_another_site_opens_no_console_page_in_the_lead_contacts_name(
    browser: Browser, camden: Node
) -> None:
    episode_id = str((await seed(camden))["episode_id"])
    child = f"{camden.plan.api_url}/console/episodes/{episode_id}"
    links = {
        "check": f"{child}?agency_type=police&purpose=early_help",
        "export": f"{child}/register.csv",
    }
    anchors = "".join(f'<p><a id="{name}" href="{url}">cats</a></p>' for name, url in links.items())
    context = await browser.new_context()
    page = await context.new_page()
    async with _another_site(lambda: f"<!doctype html><title>Cats</title>{anchors}") as site:
        await sign_in(page, camden, camden.lead)
        before = await _audited(camden, episode_id)
        for name in links:
            await page.goto(site)
            await page.click(f"#{name}")
            await page.wait_for_load_state()
            assert await page.locator("h1").inner_text() == "Open this console page?", name
        assert await _audited(camden, episode_id) == before  # no view, no check, no export
        await accessible(page, "console-cross-site")

        # The lead contact meant it: followed from the console, the page opens (and is audited),
        # without the check the other site chose.
        await page.goto(site)
        await page.click("#check")
        await page.get_by_role("link", name="Open the page from the console").click()
        await page.wait_for_url(re.compile(rf".*/console/episodes/{episode_id}$"))
        assert (await page.locator("h1").inner_text()).startswith("Child view")
        assert await _audited(camden, episode_id) == [*before, "console.view"]
    await context.close()


async def test_signing_in_through_a_provider_on_another_site_lands_on_the_queue(
    browser: Browser, camden: Node
) -> None:
    """The provider sends the browser back from another site: the callback is let in, and a page of
    ours moves on to the queue, so the queue is not taken for another site's link."""
    fields: dict[str, str] = {}

    def provider_form() -> str:  # the demo provider's sign-in form, served from another site
        hidden = "".join(
            f'<input type="hidden" name="{name}" value="{html.escape(value)}">'
            for name, value in fields.items()
        )
        return (
            f'<!doctype html><title>Provider</title><form method="post" '
            f'action="{camden.plan.api_url}/dev-idp/authorize">{hidden}'
            f'<input name="username" value="{camden.lead}">'
            f'<input name="password" value="{DEMO_PASSWORD}">'
            '<button id="go" type="submit">Sign in</button></form>'
        )

    context = await browser.new_context()
    page = await context.new_page()
    async with _another_site(provider_form) as site:
        await page.goto(camden.plan.api_url + "/console/auth/start")
        for field in await page.locator("input[type=hidden]").all():
            name, value = await field.get_attribute("name"), await field.get_attribute("value")
            assert name is not None
            fields[name] = value or ""
        await page.goto(site)
        await page.click("#go")
        await page.wait_for_url(re.compile(r".*/console/queue$"))
        await page.wait_for_load_state()
        assert await page.locator("h1").inner_text() == "Requests to verify"
    await context.close()
