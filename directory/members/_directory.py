"""Questions a node asks of verified metadata (DESIGN 3.1-3.3): is this sender a member, is it active,
which key may have signed this request, is this person one of its lead CAF contacts.

Lookups fail closed: a suspended member has no usable key, and nobody is its lead contact until it is
reinstated. Each refusal is an exception whose `code` is the federation wire code it stands for
(DESIGN 3.4), so the gateway can translate it without a table of its own.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from ._models import FederationMetadata, LeadContact, Member, PublicKey

__all__ = ["KeyNotValid", "MemberDirectory", "MemberError", "MemberSuspended", "MemberUnknown"]


class MemberError(Exception):
    """A lookup refused. Messages hold GSS codes and key ids only, never a person's details."""

    code: ClassVar[str] = "unknown_member"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class MemberUnknown(MemberError):
    code = "unknown_member"


class MemberSuspended(MemberError):
    code = "member_suspended"


class KeyNotValid(MemberError):
    """No key with that id, or not valid at that moment: the signature cannot be accepted."""

    code = "invalid_signature"


class MemberDirectory:
    """A read-only view over one verified `FederationMetadata`."""

    def __init__(self, metadata: FederationMetadata) -> None:
        self.metadata = metadata
        self._members = {member.id: member for member in metadata.members}
        # Imported keys by (member, kid): this copy never changes, and every signed request and
        # attestation looks one up (the import was 3% of a disclosure's CPU on the holder).
        self._imported: dict[tuple[str, str], PublicKey] = {}

    @property
    def version(self) -> int:
        return self.metadata.version

    @property
    def expires_at(self) -> datetime:
        return self.metadata.expires_at

    def member(self, gss: str) -> Member | None:
        return self._members.get(gss)

    def active(self, gss: str) -> Member:
        member = self._members.get(gss)
        if member is None:
            raise MemberUnknown(f"{gss} is not a member of the federation")
        if member.status != "active":
            raise MemberSuspended(f"{gss} is suspended from the federation")
        return member

    def active_members(self) -> list[Member]:
        return sorted(
            (member for member in self._members.values() if member.status == "active"),
            key=lambda member: member.id,
        )

    def key_for(self, gss: str, kid: str, at: datetime) -> PublicKey:
        """The public key `kid` of active member `gss`, if `at` lies in [not_before, not_after)."""
        if at.tzinfo is None:
            raise ValueError("at must be timezone-aware")
        member = self.active(gss)
        for key in member.signing_keys:
            if key.kid == kid:
                if not key.not_before <= at < key.not_after:
                    raise KeyNotValid(f"key {kid} of {gss} is outside its validity window")
                imported = self._imported.get((gss, kid))
                if imported is None:
                    imported = self._imported[gss, kid] = key.public_key()
                return imported
        raise KeyNotValid(f"{gss} has no key {kid}")

    def lead_contacts(self, gss: str) -> list[LeadContact]:
        """The lead CAF contacts a member lists (whatever its status: the console shows them)."""
        member = self._members.get(gss)
        if member is None:
            raise MemberUnknown(f"{gss} is not a member of the federation")
        return list(member.lead_contacts)

    def is_lead_contact(self, gss: str, contact_id: str) -> bool:
        """Whether `contact_id` may approve for `gss` (DESIGN 3.3 `approved_by`): listed for an
        ACTIVE member; False for an unknown or suspended one."""
        member = self._members.get(gss)
        if member is None or member.status != "active":
            return False
        return any(contact.id == contact_id for contact in member.lead_contacts)
