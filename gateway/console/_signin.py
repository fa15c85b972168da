"""Signing in and out: the sign-in page, the redirect to the identity provider, its callback, and
sign-out. Only a listed lead CAF contact of this borough gets a session; anyone else sees why not.

Refusals before the provider has vouched for anyone (a forged or stale callback, the provider's own
refusal, a made-up code) can be caused by anyone at will: they are counted in the metrics, not
written to the audit chain. Once the provider has issued an ID token, every refusal is audited."""

from __future__ import annotations

from aiohttp import web

from ..audit import Outcome
from ..errors import GatewayError
from ..keys import CONSOLE_OIDC, CONSOLE_SESSIONS, KEY_RING, MEMBERS, SETTINGS
from ._sessions import SIGN_IN_COOKIE, SIGN_IN_SECONDS, open_sign_in, same_secret, seal_sign_in
from ._web import (
    CONSOLE_PATH,
    LEAD,
    SESSION,
    audit,
    clear_session_cookie,
    error_page,
    lead_contact_for,
    opened_by_another_site,
    refused_anonymously,
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
    """Off to the provider, with a fresh state, nonce and PKCE verifier in a sealed cookie. Nothing
    is stored, and a session the browser already holds is left alone until a sign-in completes."""
    begun = await request.config_dict[CONSOLE_OIDC].start()
    response = web.HTTPSeeOther(begun.url)
    response.set_cookie(
        SIGN_IN_COOKIE,
        seal_sign_in(request.config_dict[KEY_RING], begun.state),
        path="/",
        max_age=SIGN_IN_SECONDS,
        secure=True,
        httponly=True,
        samesite="Lax",  # the provider sends the browser back here by a top-level navigation
    )
    raise response


def _refused(request: web.Request, why: str, status: int = 403) -> web.Response:
    response = render(
        request, "refused.html", {"title": "You cannot use this console", "why": why}, status=status
    )
    _used(response)
    return response


def _used(response: web.StreamResponse) -> None:
    """A sign-in attempt is used once, whatever its outcome."""
    response.del_cookie(SIGN_IN_COOKIE, path="/", secure=True, httponly=True, samesite="Lax")


async def callback(request: web.Request) -> web.Response:
    pending = open_sign_in(request.config_dict[KEY_RING], request.cookies.get(SIGN_IN_COOKIE))
    state = request.query.get("state", "")
    if pending is None or not same_secret(pending["state"], state):
        refused_anonymously(request, "state_mismatch")
        return _refused(
            request,
            "This sign-in was not started here, or took too long. Start again from the sign-in page.",
            status=400,
        )
    if "error" in request.query or "code" not in request.query:
        refused_anonymously(request, "provider_refused")
        return _refused(request, "The identity provider did not sign you in.", status=401)
    try:
        identity = await request.config_dict[CONSOLE_OIDC].finish(request.query["code"], pending)
    except GatewayError as error:
        if error.wire_code == "invalid_token":  # the provider issued a token we cannot accept
            await audit(request, "console.sign_in", None, Outcome.REFUSED, reason=error.wire_code)
        else:  # a made-up code, or the provider unreachable: nobody has been identified
            refused_anonymously(request, error.wire_code)
        failed = error_page(request, error.status, error.wire_code, error.message)
        _used(failed)  # its state, nonce and PKCE verifier are spent: a retry starts afresh
        return failed
    settings = request.config_dict[SETTINGS]
    lead = lead_contact_for(
        request.config_dict[MEMBERS](),
        settings.member_id,
        settings.console_identity_claim,
        identity.claims,
    )
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
    raw = await request.config_dict[CONSOLE_SESSIONS].signed_in(request.get(SESSION), lead.id)
    request[LEAD] = lead
    await audit(request, "console.sign_in", lead.id)
    response = _onwards(request)
    set_session_cookie(response, raw)
    _used(response)
    return response


def _onwards(request: web.Request) -> web.Response:
    """To the queue. Straight there when the provider is on this site; from a provider on another
    site, by a page of ours that moves on by itself: a redirect would keep the provider as the
    navigation's initiator, and `cross_site` would hold the queue back."""
    queue = f"{CONSOLE_PATH}/queue"
    if not opened_by_another_site(request):
        return web.Response(status=303, headers={"Location": queue})
    return render(request, "signed_in.html", {"title": "Signed in", "next": queue})


async def sign_out(request: web.Request) -> web.Response:
    session = request[SESSION]
    await request.config_dict[CONSOLE_SESSIONS].end(session.raw_id)
    await audit(request, "console.sign_out", request[LEAD].id)
    response = web.HTTPSeeOther(f"{CONSOLE_PATH}/sign-in?signed_out=1")
    clear_session_cookie(response)
    raise response
