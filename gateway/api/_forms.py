"""POST /api/v1/forms: a local or national document in, episodes stored, the fidelity report out.

An `Idempotency-Key` makes retries safe: the same key with the same document returns the first answer;
with another document it is a 409. The episodes, their index rows, the stored answer and the audit
entries commit in one transaction, so a failure leaves nothing half-written.

A form holds at most `MAX_EPISODES_PER_FORM` episodes (more is a 413 `payload_too_large`): its
transaction holds the database's one writer (SQLite's, or the audit lock) while it stores them, and
every other write waits meanwhile. A larger register is sent as several forms.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from typing import Any

from aiohttp import web
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters import Adapter, AdapterError, Translation, detect_adapter, get_adapter
from schemas import Problem

from ..audit import Outcome
from ..errors import Conflict, PayloadTooLarge, SchemaViolation
from ..keys import AUDIT, EPISODES
from ..storage import first_answer
from ..storage._tables import episodes, idempotency_keys
from ._auth import CALLER, needs
from ._common import adapter_error, draft

__all__ = ["MAX_EPISODES_PER_FORM", "submit_form"]

# About 5 s of writing on SQLite (1 ms an episode: sealed, indexed, audited), well inside the 20 s
# another request waits for the writer before it is answered 503 `busy`.
MAX_EPISODES_PER_FORM = 5_000
# Ids looked up per query: PostgreSQL takes at most 32,767 bound parameters in one statement.
_ID_CHUNK = 1_000


def _answer(adapter: Adapter, translation: Translation) -> dict[str, Any]:
    report = translation.report
    return {
        "format": adapter.name,
        "episode_ids": [str(e.episode_id) for e in translation.episodes],
        "fidelity": {
            "counts": {fate.value: n for fate, n in report.counts().items()},
            "fields": [
                {
                    "location": f.location,
                    "fate": f.fate.value,
                    "target": f.target,
                    "rule": f.rule,
                    "message": f.message,
                }
                for f in report.fields
            ],
        },
        "rejected": [
            {
                "location": r.location,
                "problems": [
                    {"location": p.where, "rule": p.rule, "message": p.message} for p in r.problems
                ],
            }
            for r in translation.rejected
        ],
        "warnings": [
            {"location": w.where, "rule": w.rule, "message": w.message}
            for w in translation.warnings
        ],
    }


async def _replayed(
    connection: AsyncConnection, client_id: str, key: str, request_hash: str
) -> web.Response | None:
    row = await first_answer(connection, client_id, key)
    if row is None:
        return None
    if row.request_hash != request_hash:
        raise Conflict(
            "this Idempotency-Key was used for another request", code="idempotency_key_reused"
        )
    return web.json_response(row.body, status=row.status, headers={"Idempotent-Replayed": "true"})


def _translate(name: str, data: bytes, received: dt.datetime) -> tuple[Adapter, Translation]:
    adapter = detect_adapter(data) if name == "auto" else get_adapter(name)
    return adapter, adapter.to_national(data, received_at=received)


@needs("episodes:write")
async def submit_form(request: web.Request) -> web.Response:
    data = await request.read()
    name = request.query.get("format", "auto")
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 1 <= len(key) <= 200:
        raise SchemaViolation("Idempotency-Key must be 1 to 200 characters")
    request_hash = hashlib.sha256(name.encode() + b"\0" + data).hexdigest()
    client_id = request[CALLER].client_id
    audit = request.config_dict[AUDIT]
    if key is not None:
        async with audit.engine.connect() as connection:
            replay = await _replayed(connection, client_id, key, request_hash)
        if replay is not None:
            return replay
    try:
        received = dt.datetime.now(dt.UTC)
        # Detection (which parses a JSON document) and translation are CPU work: keep the event
        # loop free for other requests meanwhile.
        adapter, translation = await asyncio.get_running_loop().run_in_executor(
            None, _translate, name, data, received
        )
    except AdapterError as exc:
        await audit.record(
            draft(request, "form.submit", None, outcome=Outcome.FAILED, reason=exc.code)
        )
        raise adapter_error(exc) from None
    if len(translation.episodes) > MAX_EPISODES_PER_FORM:
        too_many = _too_many(len(translation.episodes))
        await audit.record(
            draft(request, "form.submit", None, outcome=Outcome.FAILED, reason=too_many.wire_code)
        )
        raise too_many
    answer = _answer(adapter, translation)
    status = 201 if translation.episodes else 422
    try:
        try:
            replay = await _keep(request, adapter, translation, answer, status, key, request_hash)
        except IntegrityError:  # the same episode, stored by another request meanwhile
            raise Conflict(_EXISTS, code="episode_exists") from None
    except Conflict as exc:  # nothing of the form is kept; the refusal is recorded
        await audit.record(
            draft(request, "form.submit", None, outcome=Outcome.REFUSED, reason=exc.wire_code)
        )
        raise
    return replay or web.json_response(answer, status=status)


_EXISTS = "an episode with this episode_id is already stored"


def _too_many(count: int) -> PayloadTooLarge:
    message = (
        f"the form holds {count} episodes; the limit is {MAX_EPISODES_PER_FORM} per form:"
        " send it as several forms"
    )
    problem = Problem((), "form.too_many_episodes", message, location="/")
    return PayloadTooLarge(message, problems=[problem])


async def _any_stored(connection: AsyncConnection, ids: list[str]) -> bool:
    """Is any of `ids` stored already? Asked a chunk at a time (PostgreSQL's parameter limit)."""
    for start in range(0, len(ids), _ID_CHUNK):
        chunk = ids[start : start + _ID_CHUNK]
        if await connection.scalar(select(episodes.c.id).where(episodes.c.id.in_(chunk)).limit(1)):
            return True
    return False


async def _keep(
    request: web.Request,
    adapter: Adapter,
    translation: Translation,
    answer: dict[str, Any],
    status: int,
    key: str | None,
    request_hash: str,
) -> web.Response | None:
    """Store the form's episodes and the answer (under its Idempotency-Key) in one transaction;
    the first answer instead, for a request made again with its key."""
    audit, store = request.config_dict[AUDIT], request.config_dict[EPISODES]
    client_id = request[CALLER].client_id
    async with audit.transaction() as connection:
        if key is not None:
            replay = await _replayed(connection, client_id, key, request_hash)
            if replay is not None:
                return replay
            await connection.execute(
                insert(idempotency_keys).values(
                    client_id=client_id,
                    key=key,
                    request_hash=request_hash,
                    status=status,
                    body=answer,
                    created_at=dt.datetime.now(dt.UTC),
                )
            )
        ids = [str(e.episode_id) for e in translation.episodes]
        if await _any_stored(connection, ids):
            raise Conflict(_EXISTS, code="episode_exists")  # a national document sent again
        for episode in translation.episodes:
            await store.add(connection, episode)
            await audit.append(
                connection,
                draft(request, "episode.create", str(episode.episode_id), format=adapter.name),
            )
        if not translation.episodes:
            await audit.append(
                connection,
                draft(
                    request, "form.submit", None, outcome=Outcome.FAILED, reason="schema_violation"
                ),
            )
    return None
