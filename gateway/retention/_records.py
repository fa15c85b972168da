"""The other records that hold something about a child, sealed: what other members disclosed to
us, practitioners' requests, overrides' justifications, disclosures held for our lead contacts,
what holders told us (TAC members, lead professionals), undelivered messages, and transfer offers
that never moved an episode. No guidance sets their own period, so they follow the standard's
for CAF information (a year accessible, six archived): each goes 7 years after it came, counted
in London days as the episodes' steps are. Whatever a record was about (the episode it came from,
another member's copy) is not ours to know the closure of, so its own date is the start.

- Removed: the row, with its sealed part. A transfer offer closed unmoved (withdrawn, declined,
  released) keeps its row, ids and member codes only, and loses the lead professional it sealed,
  as a purged episode's transfer records do.
- Kept: the sharing register, the transfer records, the consent withdrawals we were told of and
  the audit chain (ids, member codes, statement ids: the record of who was shown what).
- Not touched: a message still waiting to be delivered (a consent withdrawal or a transfer commit
  is retried until it is: `federation.outbox`), and episodes, which have their own steps.
- Each record's removal has its own audit entry (`<record>.purge`, `transfer.clear`), written in
  the removal's transaction. Audit transactions are serialised across replicas, and a removal
  reports only rows it removed, so replicas passing at once remove and audit each record once.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from dateutil.relativedelta import relativedelta
from sqlalchemy import ColumnElement, Table, delete, select, true, update
from sqlalchemy.ext.asyncio import AsyncConnection

from schemas import LONDON

from ..audit import AuditDraft, Outcome
from ..audit_log import AuditLog
from ..storage._tables import (
    disclosure_approvals,
    notifications,
    outbox,
    overrides,
    practitioner_requests,
    received_copies,
    transfers,
)

__all__ = ["KEPT_YEARS", "RULES", "RecordRule", "remove_old_records"]

KEPT_YEARS = 7
_BATCH = 200  # records removed (and audited) per transaction: the audit lock is held briefly
_CLOSED_UNMOVED = ("withdrawn", "declined", "released")


@dataclass(frozen=True, slots=True)
class RecordRule:
    action: str  # the audit action of each removal
    table: Table
    since: str  # the column the 7 years count from
    only: ColumnElement[bool] = true()  # which rows the rule covers
    clear: bool = False  # keep the row, clear its sealed part

    def due(self, before: dt.datetime) -> ColumnElement[bool]:
        return (self.table.c[self.since] < before) & self.only


RULES = (
    # A request first: its answer is what came with the received copy, and its override's
    # justification was written with it.
    RecordRule("request.purge", practitioner_requests, "created_at"),
    RecordRule("received_copy.purge", received_copies, "received_at"),
    RecordRule("override.purge", overrides, "created_at"),
    RecordRule("disclosure_approval.purge", disclosure_approvals, "received_at"),
    RecordRule("notification.purge", notifications, "received_at"),
    RecordRule("outbox.purge", outbox, "created_at", outbox.c.state == "dead"),
    RecordRule(
        "transfer.clear",
        transfers,
        "updated_at",
        transfers.c.state.in_(_CLOSED_UNMOVED) & transfers.c.sealed.is_not(None),
        clear=True,
    ),
)


def kept_until(today: dt.date) -> dt.datetime:
    """The first moment (UTC, as stored) still kept on `today`: a record that came on a London day
    7 years or more before `today` goes."""
    first_day_kept = today - relativedelta(years=KEPT_YEARS) + dt.timedelta(days=1)
    return dt.datetime.combine(first_day_kept, dt.time(), tzinfo=LONDON).astimezone(dt.UTC)


async def remove_old_records(audit: AuditLog, today: dt.date, actor: str) -> dict[str, int]:
    """Remove (or clear) every record past its 7 years on `today`: how many, by audit action."""
    before = kept_until(today)
    removed: dict[str, int] = {}
    for rule in RULES:
        while True:
            async with audit.transaction() as connection:
                ids = await _remove_batch(connection, rule, before)
                for record_id in ids:
                    await audit.append(
                        connection,
                        AuditDraft(
                            actor=actor,
                            action=rule.action,
                            outcome=Outcome.SUCCESS,
                            subject=record_id,
                            details={"kept_years": KEPT_YEARS},
                        ),
                    )
            if ids:
                removed[rule.action] = removed.get(rule.action, 0) + len(ids)
            if len(ids) < _BATCH:
                break
    return removed


async def _remove_batch(
    connection: AsyncConnection, rule: RecordRule, before: dt.datetime
) -> list[str]:
    """Remove up to a batch of the rule's records due; the ids of those this removed."""
    table = rule.table
    batch = select(table.c.id).where(rule.due(before)).order_by(table.c.id).limit(_BATCH)
    # Due again in the statement itself: a row another replica changed since is left alone.
    statement: Any
    if rule.clear:
        statement = update(table).values(sealed=None, key_id=None)
    else:
        statement = delete(table)
    statement = statement.where(table.c.id.in_(batch), rule.due(before)).returning(table.c.id)
    return list((await connection.scalars(statement)).all())
