"""What every console page shares: security headers, HTML error pages, who is signed in, CSRF on
every POST, rendering with the common context, and audit entries for console actions.

Order of the console's middlewares: `guard` (headers, errors as pages) wraps `sessions` (the signed-in
lead contact, or a redirect to the sign-in page) wraps `cross_site` (no page opened by another website)
wraps `csrf` (POSTs carry the session's token and come from our own origin)."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from multidict import MultiDict, MultiDictProxy
from prometheus_client import Counter
from yarl import URL

from directory.members import LeadContact, MemberDirectory

from ..audit import AuditDraft, JsonValue, Outcome, naming
from ..errors import GatewayError, NotFound
from ..keys import AUDIT, CONSOLE_SESSIONS, MEMBERS, REQUEST_ID, SETTINGS
from ._sessions import COOKIE, ConsoleSession

__all__ = [
    "ANONYMOUS_REFUSALS",
    "CONSOLE_PATH",
    "LEAD",
    "SESSION",
    "audit",
    "audit_view",
    "cross_site",
    "csrf",
    "draft",
    "error_page",
    "guard",
    "lead_contact_for",
    "opened_by_another_site",
    "refused_anonymously",
    "render",
    "sessions",
    "set_session_cookie",
    "uuid_of",
]

log = logging.getLogger("cafx.console")

CONSOLE_PATH = "/console"
SESSION = web.RequestKey("console_session", ConsoleSession)
LEAD = web.RequestKey("console_lead", LeadContact)
# Console refusals of nobody in particular, by reason (cafx_console_anonymous_refusals_total).
ANONYMOUS_REFUSALS = web.AppKey("console_anonymous_refusals", Counter)

# Reachable without being signed in.
_PUBLIC = ("/console/sign-in", "/console/auth/", "/console/static/")

_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _secure(response: web.StreamResponse, path: str) -> None:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", _CSP)
    headers["X-Content-Type-Options"] = "nosniff"
    headers["X-Frame-Options"] = "DENY"
    # Not no-referrer: Chromium then sends `Origin: null` on our own forms. same-origin still keeps
    # the sign-in callback's code from leaking to other sites.
    headers["Referrer-Policy"] = "same-origin"
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
    if not path.startswith("/console/static/"):
        headers["Cache-Control"] = "no-store"  # pages hold personal data: never cached


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except GatewayError as error:
        response = error_page(request, error.status, error.wire_code, error.message)
    except web.HTTPException as http:
        if http.status < 400:
            _secure(http, request.path)
            raise
        code = {404: "not_found", 405: "method_not_allowed"}.get(http.status, "bad_request")
        response = error_page(request, http.status, code, http.reason)
    _secure(response, request.path)
    return response


def error_page(request: web.Request, status: int, code: str, message: str) -> web.Response:
    return render(
        request,
        "error.html",
        {"status": status, "code": code, "message": message, "title": "Something went wrong"},
        status=status,
    )


def lead_contact_for(
    directory: MemberDirectory, member_id: str, claim: str, claims: Mapping[str, Any]
) -> LeadContact | None:
    """The lead CAF contact of THIS borough whom the ID token's `claims` name, if any.

    One configured claim decides (`console_identity_claim`): `email` (only when the provider says it
    verified it) is matched with the contacts' e-mail addresses, case-insensitively; any other claim
    (`sub` by default) with their ids, exactly. Never either-or: two identities of the provider must
    not reach one contact."""
    if claim == "email":
        value = claims.get("email") if claims.get("email_verified") is True else None
    else:
        value = claims.get(claim)
    if not isinstance(value, str) or not value or directory.member(member_id) is None:
        return None
    for contact in directory.lead_contacts(member_id):
        named = contact.email.lower() == value.lower() if claim == "email" else contact.id == value
        if named and directory.is_lead_contact(member_id, contact.id):
            return contact
    return None


def _public(path: str) -> bool:
    return any(path.startswith(prefix) for prefix in _PUBLIC)


@web.middleware
async def sessions(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith(f"{CONSOLE_PATH}/static/"):
        return await handler(request)  # the stylesheet: no session, no database write
    session, expired = await request.config_dict[CONSOLE_SESSIONS].load(request.cookies.get(COOKIE))
    if session is not None:
        request[SESSION] = session
    if _public(request.path):
        return await handler(request)
    lead = None
    if session is not None:
        directory = request.config_dict[MEMBERS]()
        member = request.config_dict[SETTINGS].member_id
        # Checked on every request: a contact removed from the metadata loses access at once.
        if directory.is_lead_contact(member, session.lead_contact_id):
            lead = next(
                c for c in directory.lead_contacts(member) if c.id == session.lead_contact_id
            )
    if lead is None:
        reason = "expired" if expired else "signed-out"
        raise web.HTTPSeeOther(f"{CONSOLE_PATH}/sign-in?{reason}=1")
    request[LEAD] = lead
    return await handler(request)


def opened_by_another_site(request: web.Request) -> bool:
    """The browser says another website started this request (Fetch Metadata): another site, or
    another host of the same site (a sibling subdomain's page could load a console page as an
    image, and the SameSite=Lax cookie goes along). A browser that sends no `Sec-Fetch-Site` is
    not refused: the CSRF token still guards every change."""
    return request.headers.get("Sec-Fetch-Site") in ("cross-site", "same-site")


@web.middleware
async def cross_site(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Another website's link or script must not open a console page: with the session cookie
    (SameSite=Lax goes along on a top-level navigation) the page would write audit entries (a child
    viewed, a consent check, a register export) in the lead contact's name, for the child and the
    recipient the other site chose. Such a request gets a page that opens nothing and writes nothing,
    with a link to follow from here if the lead contact meant it. Public paths are exempt: the
    identity provider, on another site, sends the browser back to the callback, and the sign-in
    pages write nothing."""
    if (
        request.method not in ("GET", "HEAD")  # a form: `csrf` refuses it
        or _public(request.path)
        or not opened_by_another_site(request)
    ):
        return await handler(request)
    refused_anonymously(request, "cross_site")  # anyone can cause it: counted, not audited
    return render(
        request,
        "cross_site.html",
        # The address without its query: what the other site chose to check is not carried over.
        {"title": "Open this console page?", "page": request.rel_url.raw_path},
        status=403,
    )


def _same_origin(request: web.Request) -> bool:
    """The Origin header, when the browser sends one, must be this node's public origin."""
    if opened_by_another_site(request):
        return False
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # older browsers; the token still has to match
    try:  # compared as scheme, host and port: `public_url` may spell them otherwise (`:443`, case)
        return _origin_of(origin) == _origin_of(request.config_dict[SETTINGS].public_url)
    except ValueError:
        return False


def _origin_of(url: str) -> tuple[str, str, int | None]:
    parsed = URL(url)
    return parsed.scheme.lower(), (parsed.host or "").lower(), parsed.port


@web.middleware
async def csrf(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        try:
            form = await request.post()
        except ValueError:  # a body that is no form (multipart without a boundary, ...)
            form = MultiDictProxy(MultiDict())
        session = request.get(SESSION)
        token = form.get("csrf_token")
        if (
            session is None
            or not isinstance(token, str)
            or not session.csrf_valid(token)
            or not _same_origin(request)
        ):
            lead = request.get(LEAD)
            if lead is None:  # nobody signed in: counted, not written to the chain by anyone
                refused_anonymously(request, "csrf_failed")
            else:
                await audit(request, "console.csrf", None, Outcome.REFUSED, reason="csrf_failed")
            return error_page(
                request,
                403,
                "csrf_failed",
                "This form has expired or did not come from this console. Go back, reload the "
                "page and try again.",
            )
    return await handler(request)


def refused_anonymously(request: web.Request, reason: str) -> None:
    """A refusal before anyone is identified (a forged callback, a form without a session): anyone
    can cause these at will, so they are counted and logged, not written to the audit chain."""
    request.config_dict[ANONYMOUS_REFUSALS].labels(reason).inc()
    log.info("console refusal", extra={"reason": reason, "path": request.path})


def render(
    request: web.Request, template: str, context: Mapping[str, Any], *, status: int = 200
) -> web.Response:
    settings = request.config_dict[SETTINGS]
    session, lead = request.get(SESSION), request.get(LEAD)
    common = {
        "lead": lead,
        "csrf_token": session.csrf_token if session is not None and lead is not None else None,
        "member_id": settings.member_id,
        "borough": _borough_name(request),
        "path": request.path,
    }
    return aiohttp_jinja2.render_template(template, request, {**common, **context}, status=status)


def _borough_name(request: web.Request) -> str:
    settings = request.config_dict[SETTINGS]
    try:
        member = request.config_dict[MEMBERS]().member(settings.member_id)
    except (GatewayError, KeyError):
        return settings.member_id
    return member.name if member is not None else settings.member_id


async def audit(
    request: web.Request,
    action: str,
    subject: str | None,
    outcome: Outcome = Outcome.SUCCESS,
    *,
    reason: str | None = None,
    actor: str | None = None,
    **details: JsonValue,
) -> None:
    """One console action on the audit chain, in a transaction of its own."""
    await request.config_dict[AUDIT].record(
        draft(request, action, subject, outcome, reason=reason, actor=actor, **details)
    )


async def audit_view(
    request: web.Request, page: str, shown: Mapping[str, Sequence[str]], **counts: JsonValue
) -> None:
    """A page view of personal data, naming every request or episode it showed (so a subject
    access request finds every view of a child's details): as many `console.view` entries as the
    ids need (`audit.naming`), the first with the page's counts, in one transaction."""
    details: dict[str, JsonValue] = {"page": page, **counts}
    viewed = dataclasses.replace(draft(request, "console.view", None), details=details)
    log = request.config_dict[AUDIT]
    async with log.transaction() as connection:
        for entry in naming(viewed, shown, keep=("page",)):
            await log.append(connection, entry)


def draft(
    request: web.Request,
    action: str,
    subject: str | None,
    outcome: Outcome = Outcome.SUCCESS,
    *,
    reason: str | None = None,
    actor: str | None = None,
    **details: JsonValue,
) -> AuditDraft:
    """A console action's audit entry, as the lead contact (ids and codes only), for `audit` or for
    a transaction that makes the change it records."""
    lead = request.get(LEAD)
    return AuditDraft(
        actor=actor or (f"lead:{lead.id}" if lead else "console:anonymous"),
        action=action,
        outcome=outcome,
        subject=subject,
        reason=reason,
        request_id=request.get(REQUEST_ID),
        details=details,
    )


def subject_digest(subject: str) -> str:
    """An identity the provider vouched for but we refused: recorded as a digest, not as itself."""
    return hashlib.sha256(subject.encode()).hexdigest()[:16]


def set_session_cookie(response: web.StreamResponse, raw: str) -> None:
    response.set_cookie(COOKIE, raw, path="/", secure=True, httponly=True, samesite="Lax")


def clear_session_cookie(response: web.StreamResponse) -> None:
    response.del_cookie(COOKIE, path="/", secure=True, httponly=True, samesite="Lax")


def uuid_of(request: web.Request, name: str) -> str:
    """A route's `{name}` as a UUID string; anything else names nothing here."""
    try:
        return str(uuid.UUID(request.match_info[name]))
    except ValueError:
        raise NotFound("nothing by that id") from None
