"""Signing in and out: the sign-in page, the redirect to the identity provider, its callback, and
sign-out. Only a listed lead CAF contact of this borough gets a session; anyone else sees why not."""

from __future__ import annotations

import hmac

from aiohttp import web

from ..audit import Outcome
from ..errors import GatewayError
from ..keys import CONSOLE_OIDC, CONSOLE_SESSIONS
from ._web import (
    CONSOLE_PATH,
    LEAD,
    SESSION,
    audit,
    clear_session_cookie,
    lead_contact_for,
    render,
    set_session_cookie,
    subject_digest,
)

__all__ = ["callback", "sign_in_page", "sign_out", "start"]


async def sign_in_page(request: web.Request) -> web.Response:
    return render(
        request,
        "sign_in.html",
        {
            "title": "Sign in",
            "expired": "expired" in request.query,
            "signed_out": "signed_out" in request.query,
        },
    )


async def start(request: web.Request) -> web.Response:
    """A fresh pre-sign-in session (state, nonce, PKCE verifier), then off to the provider."""
    begun = await request.config_dict[CONSOLE_OIDC].start()
    raw = await request.config_dict[CONSOLE_SESSIONS].begin_sign_in(begun.state)
    previous = request.get(SESSION)
    if previous is not None:  # starting again replaces whatever the browser held
        await request.config_dict[CONSOLE_SESSIONS].end(previous.raw_id)
    response = web.HTTPSeeOther(begun.url)
    set_session_cookie(response, raw)
    raise response


def _refused(request: web.Request, why: str, status: int = 403) -> web.Response:
    return render(
        request, "refused.html", {"title": "You cannot use this console", "why": why}, status=status
    )


async def callback(request: web.Request) -> web.Response:
    sessions = request.config_dict[CONSOLE_SESSIONS]
    pending = request.get(SESSION)
    state = request.query.get("state", "")
    if (
        pending is None
        or pending.sign_in is None
        or not hmac.compare_digest(state, pending.sign_in["state"])
    ):
        await audit(request, "console.sign_in", None, Outcome.REFUSED, reason="state_mismatch")
        return _refused(
            request,
            "This sign-in was not started here, or took too long. Start again from the sign-in page.",
            status=400,
        )
    await sessions.end(pending.raw_id)  # a sign-in attempt is used once, whatever happens next
    if "error" in request.query or "code" not in request.query:
        await audit(request, "console.sign_in", None, Outcome.REFUSED, reason="provider_refused")
        return _refused(request, "The identity provider did not sign you in.", status=401)
    try:
        identity = await request.config_dict[CONSOLE_OIDC].finish(
            request.query["code"], pending.sign_in
        )
    except GatewayError as error:
        await audit(request, "console.sign_in", None, Outcome.REFUSED, reason=error.wire_code)
        raise
    lead = lead_contact_for(request, identity.subject, identity.email)
    if lead is None:
        await audit(
            request,
            "console.sign_in",
            None,
            Outcome.REFUSED,
            reason="not_lead_contact",
            subject_sha256=subject_digest(identity.subject),
        )
        return _refused(
            request,
            "You signed in, but you are not listed as a lead CAF contact of this borough in the "
            "federation's metadata. Ask your borough's CAF coordinator to add you.",
        )
    raw = await sessions.signed_in(pending, lead.id)
    request[LEAD] = lead
    await audit(request, "console.sign_in", lead.id)
    response = web.HTTPSeeOther(f"{CONSOLE_PATH}/queue")
    set_session_cookie(response, raw)
    raise response


async def sign_out(request: web.Request) -> web.Response:
    session = request[SESSION]
    await request.config_dict[CONSOLE_SESSIONS].end(session.raw_id)
    await audit(request, "console.sign_out", request[LEAD].id)
    response = web.HTTPSeeOther(f"{CONSOLE_PATH}/sign-in?signed_out=1")
    clear_session_cookie(response)
    raise response
