"""Who may use a service (protocol 003 §5), carried in the standard's own `attributes`.

The rule is one taxonomy term of the vocabulary `cafx-access` (term `universal`, `residents_only` or
`cross_borough_protocol`); a protocol adds one `cafx-access-protocol` term (its name) and one
`cafx-access-member` term per member authority (a GSS code). The document stays a valid Open Referral
UK service: only attribute rows are added, no field the schema does not know.

A service that states no rule is treated as `residents_only` and says so: telling a practitioner that
a child may use a service the borough keeps for its residents costs more than the opposite.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Literal

from schemas import is_gss_code

from ._models import Service

__all__ = [
    "ACCESS_TAXONOMY",
    "MEMBER_TAXONOMY",
    "PROTOCOL_TAXONOMY",
    "Access",
    "AccessError",
    "AccessKind",
    "access_attributes",
    "access_of",
]

ACCESS_TAXONOMY = "cafx-access"
PROTOCOL_TAXONOMY = "cafx-access-protocol"
MEMBER_TAXONOMY = "cafx-access-member"
AccessKind = Literal["universal", "residents_only", "cross_borough_protocol"]
_KINDS: tuple[AccessKind, ...] = ("universal", "residents_only", "cross_borough_protocol")
_NAMESPACE = uuid.UUID("6f1d1f52-4b43-4f43-9a55-0b5c3f0e6a11")  # ids of our terms, stable

_DESCRIPTIONS = {
    "universal": "Residents, and non-residents attending provision in the borough (schools, GPs)",
    "residents_only": "Residents of the borough only",
    "cross_borough_protocol": "Residents of the borough and of the authorities of a named protocol",
}


class AccessError(ValueError):
    """An access rule that cannot be read; `where` is the JSON pointer of the faulty attribute."""

    def __init__(self, where: str, rule: str, message: str) -> None:
        super().__init__(message)
        self.where, self.rule, self.message = where, rule, message


@dataclass(frozen=True, slots=True)
class Access:
    kind: AccessKind
    protocol: str | None = None
    members: frozenset[str] = frozenset()
    stated: bool = True  # False: the service published no rule and the default applies

    def __post_init__(self) -> None:
        if (self.kind == "cross_borough_protocol") != (self.protocol is not None):
            raise ValueError("a protocol name goes with cross_borough_protocol, and only with it")
        if self.kind == "cross_borough_protocol" and not self.members:
            raise ValueError("a cross-borough protocol names at least one member authority")
        if bad := [m for m in self.members if not is_gss_code(m)]:
            raise ValueError(f"not GSS codes: {len(bad)}")

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "protocol": self.protocol,
            "members": sorted(self.members),
            "stated": self.stated,
        }


DEFAULT_ACCESS = Access("residents_only", stated=False)


def access_of(service: Service) -> Access:
    """The service's rule, from its attributes; `AccessError` when they contradict each other."""
    kinds = service.terms(ACCESS_TAXONOMY)
    if not kinds:
        return DEFAULT_ACCESS
    if len(kinds) > 1:
        raise AccessError(
            f"/attributes/{kinds[1][0]}", "access.repeated", "more than one cafx-access term"
        )
    position, term = kinds[0]
    kind = term.term or term.name
    if kind not in _KINDS:
        raise AccessError(
            f"/attributes/{position}/taxonomy_term/term",
            "access.unknown",
            f"the access rule is one of {', '.join(_KINDS)}",
        )
    protocols = service.terms(PROTOCOL_TAXONOMY)
    members = service.terms(MEMBER_TAXONOMY)
    for number, member in members:
        if not is_gss_code(member.term or ""):
            raise AccessError(
                f"/attributes/{number}/taxonomy_term/term",
                "access.member",
                "a protocol member is a GSS code",
            )
    if kind != "cross_borough_protocol":
        if protocols or members:
            where = (protocols or members)[0][0]
            raise AccessError(
                f"/attributes/{where}", "access.protocol", "protocol terms without that rule"
            )
        return Access(kind)
    if len(protocols) != 1 or not members:
        raise AccessError(
            f"/attributes/{position}",
            "access.protocol",
            "cross_borough_protocol needs one cafx-access-protocol term and its member authorities",
        )
    name = protocols[0][1].name
    return Access(kind, name, frozenset(m.term or "" for _, m in members))


def _term(taxonomy: str, term: str, name: str, description: str) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid5(_NAMESPACE, f"{taxonomy}/{term}")),
        "name": name,
        "description": description,
        "taxonomy": taxonomy,
        "term": term,
    }


def access_attributes(service_id: str, access: Access) -> list[dict[str, Any]]:
    """The attribute rows that state `access` on the service `service_id` (ORUK `attribute`)."""
    terms = [_term(ACCESS_TAXONOMY, access.kind, access.kind, _DESCRIPTIONS[access.kind])]
    if access.protocol is not None:
        slug = "-".join(access.protocol.lower().split())
        terms.append(_term(PROTOCOL_TAXONOMY, slug, access.protocol, "The protocol that applies"))
        terms += [
            _term(MEMBER_TAXONOMY, gss, gss, "A member authority of the protocol")
            for gss in sorted(access.members)
        ]
    return [
        {
            "id": str(uuid.uuid5(_NAMESPACE, f"{service_id}/{term['id']}")),
            "link_type": "eligibility",
            "link_id": service_id,
            "taxonomy_term_id": term["id"],
            "taxonomy_term": term,
        }
        for term in terms
    ]
