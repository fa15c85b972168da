"""Transfer when a child moves authority (DESIGN 3.6): offer -> accept -> commit, as outbox messages.

    holder   POST /api/v1/episodes/{id}/transfer        offer, by a lead contact (transfers: out,
                                                         offered), if consent permits
    receiver transfer_offer message                      transfers: in, offered
    receiver POST /api/v1/transfers/{offer}/accept       a lead contact names the new lead
                                                         professional
    holder   transfer_accept message                     consent decided again; copies the whole
                                                         episode with the new lead professional,
                                                         registers it, marks its own copy
                                                         `transferred` (read-only), sends the commit
    receiver transfer_commit message                     stores the episode as its own, open,
                                                         registers it, tells the team of the lead

The episode is never without a lead professional: the holder's copy keeps its own until it is
read-only, and the receiver's copy arrives with the accepted one.

A transfer is a disclosure of the whole episode (DESIGN 3.5, 3.8): the consent engine decides it,
as for the receiving borough's early help service (`TRANSFER_PURPOSE`, every section), when it is
offered and again when the acceptance comes (a withdrawal or an exclusion since withdraws the
offer, with the engine's code); there is no public-interest override for a transfer. A committed
transfer is in the sharing register on both sides, its basis the statements consent gave, with the
holder's signed receipt. The new holder tells the team of the new lead professional as a change of
lead professional is told (`api/_episodes.py`): every other authority with a TAC member or the lead
professional on the episode, and that of the lead professional replaced.

An episode is never left with nobody holding it: what was judged at the acceptance (who may send
the episode, its custody steps) is not judged again when the commit comes, since the holder has
given its copy up by then (a member suspended meanwhile would otherwise make the steps fail). A
commit that still cannot be taken (not the episode or the lead professional accepted; the episode
came from elsewhere meanwhile; a released offer's, once another offer of the episode is accepted)
is refused for good: audited with its reason, acknowledged, and the holder is sent
`transfer_decline` with `COMMIT_REFUSED`, on which its copy takes the episode back in the state it
had (`transfer.take_back`).

An episode has at most one open offer, and only an episode still held here is committed: it cannot
move to two authorities. Each step is audited in the transaction that makes it (`transfer.offer`,
`transfer.accept`, `transfer.commit`, `transfer.receive`). A child who moves back receives the
episode over its old read-only copy, and only from the member it was moved to or one the signed
custody steps lead to from there (`custody.py`: A -> B -> C -> A); a member that never held it
cannot overwrite it. An offer for an episode the receiver cannot take (it holds it, or moved it to
a member from which the offer's custody steps do not lead to the sender) is declined at once: the
reason is kept and audited here, the sender is told only `transfer.refused`. Of several offers of
one episode, only one can be accepted.

An offer that is not going to be taken is closed, so that the episode can be offered again: its
holder withdraws it while it is unanswered (`transfer_withdraw`), or the receiver declines it before
accepting (`transfer_decline`), each with a reason code; both sides then list it `withdrawn` or
`declined`. An accepted offer whose episode has not come by its due date (escalated) can be
released by the receiver: it no longer stops another offer of the episode being accepted (the
genuine one, when a faulty member's was accepted), its holder is sent `transfer_decline`, and a
commit already on its way still lands while the receiver holds no copy of the episode and has
accepted no other offer of it (otherwise it is refused, and its holder takes its copy back). An
acceptance that crosses a withdrawal in flight is applied as nothing, and the withdrawal is sent
again to close the receiver's side too.

Unanswered offers escalate (DESIGN 3.6): an offer not committed after `answer_working_days` working
days (England and Wales bank holidays, London dates) is marked `escalated_at` on both members, each on
its own clock, audited (`transfer.escalate`) and logged as an alert (ids only) for the lead contacts,
and listed with its `due_by` date. It stays open: escalation asks people to act, it decides nothing.
On the receiver that includes an accepted offer whose episode never arrived, which it can then
release (above).
"""

from ._terms import (
    CLOSING,
    COMMIT_REFUSED,
    OPEN_STATES,
    RELEASE,
    STATES,
    TRANSFER_PURPOSE,
    Closed,
    ConsentNotGiven,
    Direction,
    ReleasedTooEarly,
    answer_due_by,
)
from ._workflow import TransferWorkflow

__all__ = [
    "CLOSING",
    "COMMIT_REFUSED",
    "OPEN_STATES",
    "RELEASE",
    "STATES",
    "TRANSFER_PURPOSE",
    "Closed",
    "ConsentNotGiven",
    "Direction",
    "ReleasedTooEarly",
    "TransferWorkflow",
    "answer_due_by",
]
