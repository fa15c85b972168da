"""The protocol's human steps as a lead CAF contact does them, in Chromium, against real nodes
(Camden asks, Hackney holds): sign in, approve a request and see the federated answer arrive, reject
one, refuse a self-approved override and have a colleague approve it, see a withdrawal on the
register, export the register as CSV and PDF, retry a dead letter, check the audit chain. Every page
is checked for the accessibility basics and kept as a full-page screenshot."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect
from sqlalchemy import select, update

from gateway.keys import ENGINE
from gateway.storage._tables import audit_entries, outbox

from ..e2e.nodes import (
    CAMDEN,
    HACKNEY,
    PRACTITIONER,
    Node,
    disclosure,
    eventually,
    match_keys,
    offer_arrives,
    seed,
)
from .conftest import accessible, screenshot, sign_in, sign_out

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

TEACHER = {
    **PRACTITIONER,
    "id": "camden-t-9",
    "name": "A Teacher",
    "role": "Teacher",
    "agency": "Camden primary school",
    "agency_type": "education",
}
POLICE = {
    **PRACTITIONER,
    "id": "camden-pc-1",
    "name": "A Police Officer",
    "role": "Police officer",
    "agency": "Met",
    "agency_type": "police",
}


async def _raise(node: Node, body: dict[str, Any]) -> str:
    status, record = await node.call("POST", "/requests", json=body)
    assert status == 201 and record["state"] == "awaiting_verification", record
    return str(record["request_id"])


def _card(page: Page, who: str) -> Any:
    return page.locator("section.card", has_text=who)


async def test_lead_contacts_verify_reject_and_share_under_an_override(
    browser: Browser, federation: dict[str, Node]
) -> None:
    camden, hackney = federation[CAMDEN], federation[HACKNEY]
    episode = await seed(hackney)
    existence = {
        "kind": "existence_check",
        "practitioner": TEACHER,
        "purpose": "early_help",
        "reason": "attendance has dropped since the family moved",
        "target_authority": HACKNEY,
        "child": match_keys(episode),
    }
    await _raise(camden, existence)
    await _raise(
        camden, {**existence, "practitioner": {**TEACHER, "id": "x-1", "name": "Someone Unknown"}}
    )
    override_id = await _raise(
        camden,
        {
            "kind": "disclosure",
            "practitioner": POLICE,
            "purpose": "safeguarding",
            "reason": "immediate risk of significant harm",
            "target_authority": HACKNEY,
            "episode_ref": episode["episode_id"],
            "sections": ["child"],
            "override": {
                "justification": "Safeguarding concern reported tonight; consent cannot be "
                "sought safely.",
                "expires_at": (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).isoformat(),
            },
        },
    )
    lead_1, lead_2 = camden.plan.borough.lead_contacts()

    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await page.goto(camden.plan.api_url + "/console/queue")
    await expect(page).to_have_url(re.compile(r".*/console/sign-in.*"))
    await accessible(page, "01-sign-in", tab=True)
    await page.get_by_role("button", name="Sign in with your borough account").click()
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await screenshot(page, "02-demo-identity-provider")
    await page.get_by_label("Username").fill(lead_1)
    await page.get_by_label("Password").fill("london-caf-demo")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Requests to verify", level=1)).to_be_visible()
    await expect(
        page.get_by_text(f"Signed in as Lead CAF contact 1, Camden ({lead_1})")
    ).to_be_visible()
    await accessible(page, "03-queue", tab=True)

    # Approve: two clicks (a note, then Approve); the federated answer is on the next page.
    teacher = _card(page, "A Teacher")
    await teacher.get_by_label("Note for the record (needed to reject)").fill("school confirmed")
    await teacher.get_by_role("button", name="Approve").click()
    banner = page.get_by_role("status")
    await expect(banner).to_contain_text("answered")
    await expect(banner).to_contain_text("The answer arrived: found")
    await expect(banner).to_contain_text(episode["episode_id"])
    await accessible(page, "04-queue-approved-answer-arrived")

    # Reject the one nobody could vouch for, saying why (a rejection needs a note).
    unknown = _card(page, "Someone Unknown")
    await unknown.get_by_label("Note for the record (needed to reject)").fill("nobody knows them")
    await unknown.get_by_role("button", name="Reject").click()
    await expect(page.get_by_role("status")).to_contain_text("rejected")
    await expect(page.locator("section.card", has_text="Someone Unknown")).to_have_count(0)

    # The override: first approval here, then it waits for a second, different lead contact.
    await _card(page, "A Police Officer").get_by_role("button", name="Approve").click()
    await expect(page.get_by_role("status")).to_contain_text("awaiting second approval")
    await page.get_by_role("link", name="Overrides").click()
    card = _card(page, "A Police Officer")
    await expect(card).to_contain_text("You gave the first approval")
    await expect(card.get_by_role("button", name="Approve")).to_have_count(0)
    await accessible(page, "05-overrides-self-approval-refused")
    # Even a hand-made POST with a valid CSRF token is refused by the domain.
    token = await page.locator('input[name="csrf_token"]').first.get_attribute("value")
    forced = await page.request.post(
        camden.plan.api_url + f"/console/requests/{override_id}/decision",
        form={"decision": "approve", "csrf_token": token or ""},
        headers={"Origin": camden.plan.api_url},
    )
    assert forced.status == 403 and "self_approval" in await forced.text()
    await sign_out(page)
    await accessible(page, "06-signed-out")

    await sign_in(page, camden, lead_2)
    await page.get_by_role("link", name="Overrides").click()
    await _card(page, "A Police Officer").get_by_role("button", name="Approve").click()
    await expect(page.get_by_role("status")).to_contain_text("information disclosed")
    await accessible(page, "07-override-second-approval-answered")
    await context.close()

    status, theirs = await hackney.call("GET", f"/register?episode={episode['episode_id']}")
    assert [e["override"] for e in theirs["entries"]] == [True]


async def test_a_withdrawal_on_the_register_its_export_and_the_federation(
    browser: Browser, federation: dict[str, Node]
) -> None:
    camden, hackney = federation[CAMDEN], federation[HACKNEY]
    episode = await seed(hackney)
    episode_id = episode["episode_id"]
    await _raise(
        camden,
        {
            "kind": "disclosure",
            "practitioner": PRACTITIONER,
            "purpose": "early_help",
            "reason": "joining the TAC",
            "target_authority": HACKNEY,
            "episode_ref": episode_id,
            "sections": ["assessments"],
        },
    )
    context = await browser.new_context(accept_downloads=True)
    page = await context.new_page()
    await sign_in(page, camden, camden.plan.borough.lead_contacts()[0])
    await page.get_by_role("button", name="Approve").click()
    await expect(page.get_by_role("status")).to_contain_text("information disclosed")

    # Hackney's case system records the family's withdrawal, while Camden is down; the console
    # shows it on the register.
    await sign_out(page)
    await camden.stop()
    status, _ = await hackney.call("POST", f"/episodes/{episode_id}/consents/C1/withdraw", json={})
    assert status == 200

    async def tried() -> bool:
        rows = await hackney.engine_rows(select(outbox.c.state, outbox.c.attempts))
        return [(r.state, r.attempts > 0) for r in rows] == [("pending", True)]

    await eventually(tried)
    await sign_in(page, hackney, hackney.plan.borough.lead_contacts()[0])
    await page.get_by_role("link", name="Child view").click()
    await accessible(page, "08-find-an-episode", tab=True)
    await page.get_by_label("Episode id").fill(episode_id)
    await page.get_by_role("button", name="Show the episode").click()
    row = page.locator("#register-table tbody tr")
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text("Camden (E09000007)")
    await expect(row).to_contain_text("withdrawn")
    await expect(page.locator("table").first).to_contain_text("withdrawn")

    # Why a recipient would be refused: the consent engine's answer, with its rule.
    await page.get_by_label("Recipient's agency type").select_option("housing")
    await page.get_by_role("button", name="Check consent").click()
    await expect(page.get_by_role("status")).to_contain_text("Refused")
    await accessible(page, "09-child-view-withdrawn-and-consent-check")

    async with page.expect_download() as waiting:
        await page.get_by_role("link", name="Download the register as CSV").click()
    download = await waiting.value
    text = (await download.path()).read_text(encoding="utf-8")
    table = list(csv.reader(io.StringIO(text)))
    assert table[0][0] == "Disclosed at (UTC)" and len(table) == 2
    assert table[1][1] == "sent" and table[1][2] == "Camden (E09000007)" and table[1][8] != ""
    async with page.expect_download() as waiting:
        await page.get_by_role("link", name="Download the register as PDF").click()
    download = await waiting.value
    assert download.suggested_filename == f"sharing-register-{episode_id}.pdf"
    pdf = (await download.path()).read_bytes()
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    assert (
        pdf.count(b"/Type /Page\n") + pdf.count(b"/Type /Page ") + pdf.count(b"/Type /Page>") >= 1
    )

    # Subject access: the child found by names and date of birth, with the episode's entry.
    await page.get_by_role("link", name="Child view").click()
    child = match_keys(episode)
    await page.get_by_label("Given names").fill(child["given_names"])
    await page.get_by_label("Family name").fill(child["family_name"])
    await page.get_by_label("Date of birth").fill(child["date_of_birth"])
    await page.get_by_role("button", name="Find the child's episodes").click()
    found = page.locator("#child-episodes tbody tr")
    await expect(found).to_have_count(1)
    await expect(found).to_contain_text(episode_id)
    await expect(found.locator("td").nth(1)).to_have_text("held")
    await expect(found.locator("td").nth(3)).to_have_text("1")
    await accessible(page, "09b-find-a-child")
    await found.get_by_role("link").click()
    await expect(page.locator("#register-table tbody tr")).to_have_count(1)

    # The withdrawal could not reach Camden; as if that had gone on past the delivery deadline,
    # it is dead-lettered. Camden is back: the operator retries it.
    async def delivered() -> bool:
        rows = await hackney.engine_rows(select(outbox.c.state))
        return [r.state for r in rows] == ["delivered"]

    assert hackney.runner is not None
    # Still pending three days on (a withdrawal is never given up by age): listed with its age,
    # never its body; the operator, having told Camden by other means, gives it up.
    async with hackney.runner.app[ENGINE].begin() as connection:
        await connection.execute(
            update(outbox).values(created_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=80))
        )
    await page.get_by_role("link", name="Federation").click()
    stuck = page.get_by_role("row", name=re.compile("Consent withdrawn|consent_withdrawn", re.I))
    await expect(stuck).to_contain_text("3 days")
    await expect(page.get_by_text("past their deadline 1")).to_be_visible()
    await accessible(page, "10-federation-overdue")
    await page.get_by_role("button", name=re.compile("^Give up")).click()
    await expect(page.get_by_role("status")).to_contain_text("given up")
    given = await hackney.engine_rows(select(outbox.c.state, outbox.c.last_error))
    assert [(r.state, r.last_error) for r in given] == [("dead", "given_up")]
    gave_up = await hackney.engine_rows(
        select(audit_entries.c.outcome).where(audit_entries.c.action == "outbox.give_up")
    )
    assert [r.outcome for r in gave_up] == ["success"]
    async with hackney.runner.app[ENGINE].begin() as connection:
        await connection.execute(update(outbox).values(state="dead", last_error="peer_unavailable"))
    await camden.start()
    await page.get_by_role("link", name="Federation").click()
    await expect(page.get_by_role("row", name=re.compile("Camden"))).to_contain_text("active")
    await expect(page.get_by_text("peer_unavailable")).to_be_visible()
    await accessible(page, "10-federation-dead-letter")
    await page.get_by_role("button", name=re.compile("^Retry")).click()
    await expect(page.get_by_role("status")).to_contain_text("put back in the queue")
    await eventually(delivered)

    await page.get_by_role("link", name="Audit").click()
    # Fewer entries than one checkpoint interval: the everyday check is the whole chain anyway.
    await expect(page.get_by_role("status")).to_contain_text("The audit chain verifies")
    await accessible(page, "11-audit")
    await page.get_by_role("button", name="Verify the whole chain").click()
    await expect(page.get_by_role("status")).to_contain_text(re.compile(r"all \d+ entries checked"))

    # The seeded episode's first TAC meeting is long overdue: the list says so and leads to it.
    await page.get_by_role("link", name="Due").click()
    late = page.get_by_role("row", name=re.compile(episode_id))
    await expect(late).to_contain_text("First TAC meeting")
    await expect(late).to_contain_text(re.compile(r"\d+ days late"))
    await accessible(page, "11b-due")
    await page.get_by_label("Show").select_option("28")
    await page.get_by_role("button", name="Show", exact=True).click()
    await expect(page.get_by_label("Show")).to_have_value("28")
    await late.get_by_role("link").click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Child view")
    await context.close()


@pytest.mark.parametrize("federation", ["always"], indirect=True)
async def test_the_holder_releases_another_boroughs_disclosure(
    browser: Browser, federation: dict[str, Node]
) -> None:
    camden, hackney = federation[CAMDEN], federation[HACKNEY]
    episode = await seed(hackney)
    request_id = await _raise(camden, disclosure(episode, sections=["assessments"]))
    context = await browser.new_context()
    page = await context.new_page()
    await sign_in(page, camden, camden.plan.borough.lead_contacts()[0])
    await page.get_by_role("button", name="Approve").click()
    await expect(page.get_by_role("status")).to_contain_text("awaiting holder")
    await sign_out(page)

    await sign_in(page, hackney, hackney.plan.borough.lead_contacts()[0])
    held = page.locator("section.card", has_text="Camden (E09000007)")
    await expect(held).to_contain_text("joining the TAC")
    await expect(held).to_contain_text("assessments")
    await accessible(page, "12-holder-approval-queue")
    await held.get_by_role("button", name="Approve disclosure").click()
    await expect(page.get_by_role("status")).to_contain_text("approved (disclosed)")
    assert re.search(r"\?disclosure=[0-9a-f-]{36}$", page.url)  # an id, looked up: no text
    await screenshot(page, "13-holder-approval-released")
    await context.close()

    async def answered() -> bool:
        status, record = await camden.call("GET", f"/requests/{request_id}")
        return bool(record["state"] == "answered")

    await eventually(answered)


async def test_a_lead_contact_declines_a_transfer_offer(
    browser: Browser, federation: dict[str, Node]
) -> None:
    """Hackney offers an episode to Camden; Camden's lead contact declines it from the federation
    page with a reason, and Hackney lists its offer declined with that reason."""
    camden, hackney = federation[CAMDEN], federation[HACKNEY]
    episode = await seed(hackney)
    status, offer = await hackney.call(
        "POST",
        f"/episodes/{episode['episode_id']}/transfer",
        json={"to": CAMDEN, "lead_contact_id": hackney.lead},
    )
    assert status == 201, offer
    offer_id = offer["offer_id"]
    await offer_arrives(camden, offer_id)
    context = await browser.new_context()
    page = await context.new_page()
    await sign_in(page, camden, camden.plan.borough.lead_contacts()[0])
    await page.get_by_role("link", name="Federation").click()
    await page.get_by_label(f"Reason to decline offer {offer_id}").select_option("not_resident")
    await accessible(page, "12-federation-transfer-offer")
    await page.get_by_role("button", name=f"Decline offer {offer_id}").click()
    await expect(page.get_by_role("status")).to_contain_text("The transfer offer was closed")
    await expect(page.get_by_text(offer_id)).to_have_count(0)

    async def declined_at_hackney() -> bool:
        status, ours = await hackney.call("GET", "/transfers?direction=out")
        [made] = ours["transfers"]
        return bool((made["state"], made["reason"]) == ("declined", "not_resident"))

    await eventually(declined_at_hackney)
    await context.close()
