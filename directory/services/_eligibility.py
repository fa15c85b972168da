"""May this child use this service? From where the child lives and goes to school (GSS codes), the
authority that runs the service and its access rule (protocol 003 §5)."""

from __future__ import annotations

from dataclasses import dataclass

from schemas import is_gss_code

from ._access import Access

__all__ = ["Child", "Verdict", "eligibility", "parse_eligible_for"]


@dataclass(frozen=True, slots=True)
class Child:
    residence: str | None
    school: str | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    eligible: bool
    code: str  # stable: resident, attends_school, residence_unknown, ... (docs/directory.md)
    reason: str


_UNKNOWN = {
    "universal": "no residence given, and not at school in the borough",
    "residents_only": "residents only, and no residence given",
    "cross_borough_protocol": "no residence given: the protocol covers where a child lives",
}


def parse_eligible_for(value: str) -> Child:
    """`residence:GSS,school:GSS` (either part may be left out, not both); ValueError says why."""
    parts: dict[str, str] = {}
    for item in value.split(","):
        key, _, gss = item.strip().partition(":")
        if key not in ("residence", "school"):
            raise ValueError("parts are residence:GSS and school:GSS")
        if key in parts:
            raise ValueError(f"{key} is given twice")
        if not is_gss_code(gss):
            raise ValueError(f"{key} needs a GSS code such as E09000007")
        parts[key] = gss
    return Child(parts.get("residence"), parts.get("school"))


def eligibility(authority: str, access: Access, child: Child) -> Verdict:
    """Unknown residence is `residence_unknown` whatever the rule, never a refusal that reads as
    if the child were known to live elsewhere: the child may well live in the borough."""
    unstated = "" if access.stated else " (the service states no rule: residents only assumed)"
    if child.residence == authority:
        return Verdict(True, "resident", "lives in the borough that runs the service")
    if access.kind == "universal" and child.school == authority:
        return Verdict(
            True, "attends_school", "attends school in the borough (a universal service)"
        )
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
