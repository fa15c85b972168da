"""May this child use this service? From where the child lives and the universal provision it attends
(school, GP practice, other: GSS codes), the authority that runs the service and its access rule
(protocol 003 §5: universal services are also for "non residents who are attending universal provision
(e.g. schools, GP practices, Youth Services)")."""

from __future__ import annotations

from dataclasses import dataclass

from schemas import is_gss_code

from ._access import Access

__all__ = ["Child", "Verdict", "eligibility", "parse_eligible_for"]


@dataclass(frozen=True, slots=True)
class Child:
    residence: str | None
    school: str | None = None
    gp: str | None = None  # where the child's GP practice is
    provision: str | None = None  # other universal provision attended (a youth service, ...)


@dataclass(frozen=True, slots=True)
class Verdict:
    eligible: bool
    code: str  # stable: resident, attends_school, residence_unknown, ... (docs/directory.md)
    reason: str


_PARTS = ("residence", "school", "gp", "provision")
# A universal service's other ways in: the provision the child attends in the borough.
_ATTENDS = (
    ("school", "attends_school", "attends school in the borough (a universal service)"),
    ("gp", "registered_gp", "has a GP practice in the borough (a universal service)"),
    ("provision", "attends_provision", "attends universal provision in the borough"),
)

_UNKNOWN = {
    "universal": "no residence given, and attends no universal provision in the borough",
    "residents_only": "residents only, and no residence given",
    "cross_borough_protocol": "no residence given: the protocol covers where a child lives",
}


def parse_eligible_for(value: str) -> Child:
    """`residence:GSS,school:GSS,gp:GSS,provision:GSS` (any part may be left out, not all);
    ValueError says why."""
    parts: dict[str, str] = {}
    for item in value.split(","):
        key, _, gss = item.strip().partition(":")
        if key not in _PARTS:
            raise ValueError("parts are residence:, school:, gp: and provision: with a GSS code")
        if key in parts:
            raise ValueError(f"{key} is given twice")
        if not is_gss_code(gss):
            raise ValueError(f"{key} needs a GSS code such as E09000007")
        parts[key] = gss
    return Child(parts.pop("residence", None), **parts)


def eligibility(authority: str, access: Access, child: Child) -> Verdict:
    """Unknown residence is `residence_unknown` whatever the rule, never a refusal that reads as
    if the child were known to live elsewhere: the child may well live in the borough."""
    unstated = "" if access.stated else " (the service states no rule: residents only assumed)"
    if child.residence == authority:
        return Verdict(True, "resident", "lives in the borough that runs the service")
    if access.kind == "universal":
        for part, code, reason in _ATTENDS:
            if getattr(child, part) == authority:
                return Verdict(True, code, reason)
    if child.residence is None:
        return Verdict(False, "residence_unknown", _UNKNOWN[access.kind] + unstated)
    if access.kind == "universal":
        return Verdict(
            False,
            "not_resident",
            "universal services are for residents and children attending provision in the borough",
        )
    if access.kind == "cross_borough_protocol":
        if child.residence in access.members:
            return Verdict(
                True, "protocol_member", f"lives in a member authority of {access.protocol}"
            )
        return Verdict(
            False,
            "outside_protocol",
            f"lives neither in the borough nor in a member authority of {access.protocol}",
        )
    return Verdict(False, "residents_only", "residents of the borough only" + unstated)
