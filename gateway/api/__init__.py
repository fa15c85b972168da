"""`/api/v1`: the node's API for borough case systems (issue 5), behind bearer tokens and scopes."""

from __future__ import annotations

from aiohttp import web

from ._approvals import decide_disclosure, waiting_disclosures
from ._auth import auth_middleware, required_scope
from ._consents import check_consent, post_consent, post_withdrawal
from ._directory import member_contacts, search_services
from ._episodes import get_episode, post_event, search_episodes
from ._forms import submit_form
from ._notifications import list_notifications
from ._openapi import openapi_document, serve_openapi
from ._overdue import list_overdue
from ._records import get_register, verify_audit
from ._reports import quality
from ._requests import decide_request, get_request, post_request, waiting_requests
from ._transfers import (
    accept_transfer,
    decline_transfer,
    list_transfers,
    offer_transfer,
    withdraw_transfer,
)

__all__ = ["api_app", "openapi_document", "required_scope"]


def api_app(max_body_bytes: int) -> web.Application:
    app = web.Application(middlewares=[auth_middleware], client_max_size=max_body_bytes)
    r = app.router
    r.add_get("/openapi.json", serve_openapi)
    r.add_post("/forms", submit_form)
    r.add_get("/episodes", search_episodes)
    r.add_get("/episodes/{episode_id}", get_episode)
    r.add_get("/overdue", list_overdue)
    r.add_get("/reports/quality", quality)
    r.add_post("/episodes/{episode_id}/events", post_event)
    r.add_post("/episodes/{episode_id}/consents", post_consent)
    r.add_post("/episodes/{episode_id}/consents/{consent_id}/withdraw", post_withdrawal)
    r.add_post("/episodes/{episode_id}/consent-check", check_consent)
    r.add_get("/audit/verify", verify_audit)
    r.add_get("/register", get_register)
    r.add_post("/episodes/{episode_id}/transfer", offer_transfer)
    r.add_get("/transfers", list_transfers)
    r.add_post("/transfers/{offer_id}/accept", accept_transfer)
    r.add_post("/transfers/{offer_id}/withdraw", withdraw_transfer)
    r.add_post("/transfers/{offer_id}/decline", decline_transfer)
    r.add_get("/notifications", list_notifications)
    r.add_post("/requests", post_request)
    r.add_get("/requests", waiting_requests)
    r.add_get("/requests/{request_id}", get_request)
    r.add_post("/requests/{request_id}/decision", decide_request)
    r.add_get("/disclosure-approvals", waiting_disclosures)
    r.add_post("/disclosure-approvals/{approval_id}/decision", decide_disclosure)
    r.add_get("/directory/services", search_services)
    r.add_get("/directory/contacts", member_contacts)
    return app
