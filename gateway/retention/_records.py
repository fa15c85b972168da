"""The other records that hold something about a child or the staff working with one, sealed or
hashed: what other members disclosed to us and what our requests told of those children,
practitioners' requests, overrides' justifications, disclosures held for our lead contacts, what
holders told us (TAC members, lead professionals), messages dead-lettered or delivered, the ids of
messages received, the idempotency keys of forms and requests, and transfer offers that never
moved an episode. No guidance sets their own period, so they follow the standard's for CAF
information (a year accessible, six archived): each goes on the London day 7 years after the day
it came, as an episode's purge counts its 7 years. Whatever a record was about (the episode it came
from, another member's copy) is not ours to know the closure of, so its own date is the start.

- Removed: the row, with its sealed part. A transfer offer closed unmoved (withdrawn or declined
  on the holder's side, released on the receiver's) keeps its row, ids and member codes only, and
  loses the lead contacts and lead professional it sealed, as a purged episode's transfer records
  do. An idempotency key goes first, so a replay under it after its request has gone raises a new
  request rather than finding none.
- Kept: the sharing register (it still names each episode's holder for `federation.notifications`),
  the transfer records, the consent withdrawals we were told of and the audit chain (ids, member
  codes, statement ids: the record of who was shown what).
- Not touched: a request being sent (`approved`), a message still waiting to be delivered (a
  consent withdrawal or a transfer commit is retried until it is: `federation.outbox`), and
  episodes, which have their own steps.
- Each removal has its own audit entry (`<record>.purge`, `transfer.clear`), written in the
  removal's transaction. Audit transactions are serialised across replicas, and a removal reports
  only rows it removed, so replicas passing at once remove and audit each record once.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from dateutil.relativedelta import relativedelta
from sqlalchemy import ColumnElement, Table, delete, select, true, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from schemas import LONDON

from ..audit import AuditDraft, Outcome
from ..audit_log import AuditLog
from ..federation.transfer._terms import CLOSING, RELEASE
from ..storage._tables import (
    disclosure_approvals,
    idempotency_keys,
    inbox,
    notifications,
    outbox,
    overrides,
    practitioner_requests,
    received_children,
    received_copies,
    transfers,
)

__all__ = ["KEPT_YEARS", "RULES", "RecordRule", "kept_until", "remove_old_records"]

KEPT_YEARS = 7
_BATCH = 200  # records removed (and audited) per transaction: the audit lock is held briefly
_CLOSED_UNMOVED = (*(state for _, state in CLOSING.values()), RELEASE[1])


@dataclass(frozen=True, slots=True)
class RecordRule:
    action: str  # the audit action of each removal
    table: Table
    since: str  # the column the 7 years count from
    only: ColumnElement[bool] = true()  # which rows the rule covers
    clear: bool = False  # keep the row, clear its sealed part
    key: tuple[str, ...] = ("id",)  # the columns naming a row; the first is the audit subject
    detail: str | None = None  # a column whose value the audit entry also gives

    def due(self, before: dt.datetime) -> ColumnElement[bool]:
        return (self.table.c[self.since] < before) & self.only


RULES = (
    # The key names its client, never the client's own key text (anything could be in it).
    RecordRule("idempotency_key.purge", idempotency_keys, "created_at", key=("client_id", "key")),
    RecordRule(
        "request.purge",
        practitioner_requests,
        "created_at",
        practitioner_requests.c.state != "approved",  # being sent: it settles first
    ),
    RecordRule("received_copy.purge", received_copies, "received_at"),
    # What this node's requests told of the child of an episode received (the register per child):
    # from the latest request that added to it.
    RecordRule("received_child.purge", received_children, "updated_at", key=("episode_ref",)),
    RecordRule("override.purge", overrides, "created_at"),
    RecordRule("disclosure_approval.purge", disclosure_approvals, "received_at"),
    RecordRule("notification.purge", notifications, "received_at"),
    # Delivered (their bodies cleared on delivery) and dead-lettered messages; one still to be
    # delivered stays, however old. Received ids go too: no sender retries for 7 years.
    RecordRule("outbox.purge", outbox, "created_at", outbox.c.state.in_(("delivered", "dead"))),
    RecordRule("inbox.purge", inbox, "received_at", key=("message_id", "sender"), detail="sender"),
    RecordRule(
        "transfer.clear",
        transfers,
        "updated_at",
        transfers.c.state.in_(_CLOSED_UNMOVED) & transfers.c.sealed.is_not(None),
        clear=True,
        key=("id", "direction"),
        detail="direction",
    ),
)


def kept_until(today: dt.date) -> dt.datetime:
    """The first moment (UTC, as stored) still kept on `today`. A record that came on a London day
    `d` goes once `d` + 7 years (as relativedelta counts: 29 February to 28 February) is `today`
    or earlier, as an episode's purge falls due."""
    last_gone = today - relativedelta(years=KEPT_YEARS)
    while last_gone + dt.timedelta(days=1) + relativedelta(years=KEPT_YEARS) <= today:
        last_gone += dt.timedelta(days=1)  # 28 February: the 29th before it goes too
    first_kept = last_gone + dt.timedelta(days=1)
    # In UTC: SQLite compares the stored UTC text with the bound value's wall-clock time.
    return dt.datetime.combine(first_kept, dt.time(), tzinfo=LONDON).astimezone(dt.UTC)


async def remove_old_records(audit: AuditLog, today: dt.date, actor: str) -> dict[str, int]:
    """Remove (or clear) every record past its 7 years on `today`: how many, by audit action."""
    before = kept_until(today)
    removed: dict[str, int] = {}
    for rule in RULES:
        if not await _any_due(audit, rule, before):  # the audit lock is taken only for work
            continue
        while True:
            async with audit.transaction() as connection:
                rows = await _remove_batch(connection, rule, before)
                for row in rows:
                    details: dict[str, str | int] = {"kept_years": KEPT_YEARS}
                    if rule.detail is not None:
                        details[rule.detail] = row[1]
                    await audit.append(
                        connection,
                        AuditDraft(
                            actor=actor,
                            action=rule.action,
                            outcome=Outcome.SUCCESS,
                            subject=row[0],
                            details=details,
                        ),
                    )
            if rows:
                removed[rule.action] = removed.get(rule.action, 0) + len(rows)
            if len(rows) < _BATCH:
                break
    return removed


async def _any_due(audit: AuditLog, rule: RecordRule, before: dt.datetime) -> bool:
    async with audit.engine.connect() as connection:
        found = await connection.scalar(
            select(rule.table.c[rule.key[0]]).where(rule.due(before)).limit(1)
        )
    return found is not None


async def _remove_batch(
    connection: AsyncConnection, rule: RecordRule, before: dt.datetime
) -> list[Any]:
    """Remove up to a batch of the rule's records due: (subject, detail) of each one removed."""
    table = rule.table
    key = [table.c[name] for name in rule.key]
    batch = select(*key).where(rule.due(before)).order_by(*key).limit(_BATCH)
    chosen = key[0].in_(batch) if len(key) == 1 else tuple_(*key).in_(batch)
    statement: Any = update(table).values(sealed=None, key_id=None) if rule.clear else delete(table)
    # Due again in the statement itself: on PostgreSQL a writer that takes no audit lock may
    # have changed the row after the batch was chosen (it is read again once its lock is free).
    returned = [key[0], table.c[rule.detail]] if rule.detail else [key[0]]
    statement = statement.where(chosen, rule.due(before)).returning(*returned)
    return list((await connection.execute(statement)).all())
