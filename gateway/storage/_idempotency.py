"""Idempotency keys (`Idempotency-Key`): what a client's first call under a key answered."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from ._tables import idempotency_keys

__all__ = ["first_answer"]


async def first_answer(connection: AsyncConnection, client_id: str, key: str) -> Any | None:
    """The row kept for `client_id`'s key (`request_hash`, `status`, `body`), or None."""
    return (
        await connection.execute(
            select(idempotency_keys).where(
                idempotency_keys.c.client_id == client_id, idempotency_keys.c.key == key
            )
        )
    ).one_or_none()
