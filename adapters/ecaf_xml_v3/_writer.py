"""National episode -> eCAF v3 XML, as an eCAF system exports it (formats/README.md, "ecaf-xml-v3").

The document has the element order, the prefix (`ecaf`) and the layout of eCAF's own exports, and holds
only elements eCAF writes in each place. What `extensions["ecaf-xml-v3"]` kept (unknown elements and
attributes, text standing directly in a container) is put back where it was.

eCAF cannot say everything the national schema can. What it cannot carry is left out, never squeezed in:
- national fields with no eCAF home: known_as, previous_names, expected_date_of_delivery, first_language,
  religion, disability, school, identifiers.local_id; a parent's email and address; an assessment's
  people_present, conclusions and comments, elements' applies_to; a lead professional's role, TAC
  members' telephone and email; a plan action's desired_outcome; a review's people_present,
  next_steps and next_review_on; closure notes; service_requests, family_ref;
- gender indeterminate / not_stated are written U; state potential as Open, transferred and archived as
  Closed (eCAF knows Open and Closed); an address's town becomes its last line;
- a practitioner's authority, when known, is written as their `LocalAuthority` (TAC members carry
  one in eCAF's exports; the assessor and lead professional take the same element when one is known).

Consent is never written broader than it was given. eCAF's consent has no purposes, sections, expiry or
withdrawal, and names agencies by type only. So a consent that is withdrawn, expires, or is limited to
purposes or sections is not written at all (the receiving system would take it as open-ended), an
agreed agency named more narrowly than by its type is left out of SharingAgreedWith, and a consent
excluding an agency it cannot name by type is not written. Leaving consent out means less sharing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from lxml import etree

from schemas import (
    AgencyRef,
    Assessment,
    ConsentStatement,
    ElementAssessment,
    Episode,
    Practitioner,
    Section,
    authority_by_gss,
)

from .._base import AdapterError
from .._safe import parse_xml
from . import _codes as codes
from ._paths import FORMAT, NS, RECOGNISED_ATTRIBUTES, REPEATABLE, ROOT, Q, local_name, tag
from ._walk import MAX_KEPT

__all__ = ["DEFAULT_SCHEMA_VERSION", "KNOWN_CHILDREN", "write_episode"]

DEFAULT_SCHEMA_VERSION: Final = "3.1"
_DECLARATION: Final = b'<?xml version="1.0" encoding="UTF-8"?>\n'
_ELEMENT_START: Final = re.compile(r"<[^\W\d]")
_ALL_SECTIONS: Final = frozenset(Section)

# Elements whose children each sit on a line of their own in eCAF's exports; others are written inline.
_BLOCKS: Final = frozenset(
    {
        "CAFEpisode",
        "Child",
        "ParentsCarers",
        "Assessment",
        "Domain",
        "Consent",
        "TeamAroundChild",
        "DeliveryPlan",
    }
)
# What the reader understands in each element. Kept content may never add one of these (it would
# change what the document says, e.g. a second consent), nor anything inside a consent.
KNOWN_CHILDREN: Final[Mapping[str, frozenset[str]]] = {
    "CAFEpisode": frozenset(
        {
            "EpisodeRef",
            "LocalAuthority",
            "Status",
            "Child",
            "ParentsCarers",
            "Assessment",
            "Consent",
            "LeadProfessional",
            "TeamAroundChild",
            "DeliveryPlan",
            "Review",
            "Closure",
        }
    ),
    "Child": frozenset(
        {
            "Forename",
            "Surname",
            "DateOfBirth",
            "Gender",
            "Ethnicity",
            "Address",
            "Identifiers",
            "InterpreterRequired",
        }
    ),
    "Address": frozenset({"Line", "Postcode"}),
    "Identifiers": frozenset({"NHSNumber", "UPN", "ULN"}),
    "ParentsCarers": frozenset({"ParentCarer"}),
    "ParentCarer": frozenset({"Name", "Relationship", "Telephone"}),
    "Assessment": frozenset({"Assessor", "ReasonForAssessment", "Domain"}),
    "Assessor": frozenset(
        {"Name", "Role", "Organisation", "AgencyType", "LocalAuthority", "Telephone", "Email"}
    ),
    "Domain": frozenset({"Element"}),
    "Element": frozenset({"Strengths", "Needs"}),
    "LeadProfessional": frozenset(
        {"Name", "Organisation", "AgencyType", "LocalAuthority", "Telephone", "Email"}
    ),
    "TeamAroundChild": frozenset({"Member"}),
    "Member": frozenset({"Name", "Role", "Organisation", "AgencyType", "LocalAuthority"}),
    "DeliveryPlan": frozenset({"Action"}),
    "Action": frozenset({"Need", "Action", "Responsible", "ByWhen", "ECMOutcome"}),
    "Review": frozenset({"Progress"}),
}


_KNOWN_TAGS: Final = {
    parent: frozenset(Q + n for n in names) for parent, names in KNOWN_CHILDREN.items()
}


def _add(
    parent: etree._Element,
    name: str,
    text: str | None = None,
    attributes: Iterable[tuple[str, str]] = (),
) -> etree._Element:
    el = etree.SubElement(parent, Q + name)
    for key, value in attributes:
        el.set(key, value)
    if text is not None:
        el.text = text
    if local_name(parent.tag) in _BLOCKS:
        el.tail = "\n"
    if name in _BLOCKS:
        el.text = "\n"
    return el


def _optional(parent: etree._Element, name: str, text: str | None) -> None:
    if text is not None:
        _add(parent, name, text)


def _boolean(value: bool) -> str:
    return "true" if value else "false"


def _practitioner(
    parent: etree._Element, name: str, p: Practitioner, role: bool, contact: bool
) -> None:
    el = _add(parent, name)
    _add(el, "Name", p.name)
    if role:
        _optional(el, "Role", p.role)
    _add(el, "Organisation", p.organisation)
    _add(el, "AgencyType", p.agency_type.value)
    _optional(el, "LocalAuthority", p.authority)
    if contact:
        _optional(el, "Telephone", p.telephone)
        _optional(el, "Email", p.email)


def _domains(elements: Sequence[ElementAssessment]) -> list[tuple[str, list[ElementAssessment]]]:
    """Consecutive elements of one domain go in one Domain, in the order they are in."""
    groups: list[tuple[str, list[ElementAssessment]]] = []
    for element in elements:
        domain = codes.ELEMENT_OUT[element.element].split(".", 1)[0]
        if groups and groups[-1][0] == domain:
            groups[-1][1].append(element)
        else:
            groups.append((domain, [element]))
    return groups


def _assessment(root: etree._Element, a: Assessment) -> None:
    attributes = [("version", str(a.version)), ("started", a.started_on.isoformat())]
    if a.completed_on is not None:
        attributes.append(("completed", a.completed_on.isoformat()))
    el = _add(root, "Assessment", attributes=attributes)
    _practitioner(el, "Assessor", a.assessor, role=True, contact=True)
    _add(el, "ReasonForAssessment", a.reason)
    for domain, elements in _domains(a.elements):
        d = _add(el, "Domain", attributes=[("code", domain)])
        for element in elements:
            e = _add(d, "Element", attributes=[("code", codes.ELEMENT_OUT[element.element])])
            _optional(e, "Strengths", element.strengths)
            _optional(e, "Needs", element.needs)


def _by_type(agency: AgencyRef) -> bool:
    return agency.agency_type is not None and agency.name is None and agency.authority is None


def _writable(c: ConsentStatement) -> bool:
    """Can eCAF say this consent without making it broader? (See the module docstring.)"""
    if c.withdrawn_on is not None or c.valid_until is not None or c.purposes:
        return False
    if c.sections is not None and frozenset(c.sections) != _ALL_SECTIONS:
        return False
    return all(a.agency_type is not None for a in c.excluded)


def _agencies(parent: etree._Element, name: str, agencies: Iterable[AgencyRef]) -> None:
    el = _add(parent, name, "")
    for agency in agencies:
        if agency.agency_type is not None:
            _add(el, "Agency", attributes=[("type", agency.agency_type.value)])


def _consent(root: etree._Element, c: ConsentStatement) -> None:
    el = _add(
        root,
        "Consent",
        attributes=[
            ("id", c.consent_id),
            ("date", c.given_on.isoformat()),
            ("method", c.method.value),
        ],
    )
    for giver in c.given_by:
        _add(
            el,
            "GivenBy",
            attributes=[("role", codes.CONSENT_ROLE_OUT[giver.role]), ("name", giver.name)],
        )
    if c.young_person_competent:
        _add(el, "CompetenceAssessed", "true")
    _add(el, "Storage", _boolean(c.storage_agreed))
    _agencies(el, "SharingAgreedWith", (a for a in c.share_with if _by_type(a)))
    _agencies(el, "SharingExcluded", c.excluded)


def _child(root: etree._Element, episode: Episode) -> None:
    child = episode.child
    el = _add(root, "Child")
    _add(el, "Forename", child.given_names)
    _add(el, "Surname", child.family_name)
    if child.date_of_birth is not None:
        _add(el, "DateOfBirth", child.date_of_birth.isoformat())
    _add(el, "Gender", codes.GENDER_OUT[child.gender])
    if child.ethnicity is not None:
        _add(el, "Ethnicity", child.ethnicity.value)
    if child.address is not None:
        address = _add(el, "Address", "")
        for line in child.address.lines:
            _add(address, "Line", line)
        _optional(address, "Line", child.address.town)
        _optional(address, "Postcode", child.address.postcode)
    identifiers = _add(el, "Identifiers", "")
    _optional(identifiers, "NHSNumber", child.identifiers.nhs_number)
    _optional(identifiers, "UPN", child.identifiers.upn)
    _optional(identifiers, "ULN", child.identifiers.uln)
    if child.interpreter_required is not None:
        _add(el, "InterpreterRequired", _boolean(child.interpreter_required))


def _build(episode: Episode, dfe: str, kept: Mapping[str, Any]) -> etree._Element:
    version = kept.get("schemaVersion")
    root = etree.Element(
        tag("CAFEpisode"),
        {"schemaVersion": version if isinstance(version, str) else DEFAULT_SCHEMA_VERSION},
        nsmap={"ecaf": NS},
    )
    root.text = "\n"
    _add(root, "EpisodeRef", episode.local_ref or str(episode.episode_id))
    _add(root, "LocalAuthority", dfe)
    _add(root, "Status", codes.STATUS_OUT[episode.state])
    _child(root, episode)
    parents = _add(root, "ParentsCarers")
    for p in episode.parents_carers:
        el = _add(
            parents,
            "ParentCarer",
            attributes=[("parentalResponsibility", _boolean(p.parental_responsibility))],
        )
        _add(el, "Name", p.name)
        _add(el, "Relationship", p.relationship)
        _optional(el, "Telephone", p.telephone)
    for assessment in episode.assessments:
        _assessment(root, assessment)
    for consent in episode.consents:
        if _writable(consent):
            _consent(root, consent)
    if episode.lead_professional is not None:
        _practitioner(root, "LeadProfessional", episode.lead_professional, role=False, contact=True)
    tac = _add(root, "TeamAroundChild")
    tac.tail = None  # eCAF writes DeliveryPlan straight after it
    for member in episode.tac_members:
        _practitioner(tac, "Member", member, role=True, contact=False)
    plan = _add(root, "DeliveryPlan")
    for action in episode.delivery_plan:
        el = _add(plan, "Action")
        _add(el, "Need", action.need)
        _add(el, "Action", action.action)
        _add(el, "Responsible", action.responsible)
        if action.due_on is not None:
            _add(el, "ByWhen", action.due_on.isoformat())
        if action.ecm_outcome is not None:
            _add(el, "ECMOutcome", action.ecm_outcome.value)
    for review in episode.reviews:
        el = _add(
            root,
            "Review",
            attributes=[
                ("date", review.held_on.isoformat()),
                ("tacHeld", _boolean(review.tac_meeting_held)),
            ],
        )
        _optional(el, "Progress", review.progress)
    if episode.closure is not None:
        _add(
            root,
            "Closure",
            attributes=[
                ("date", episode.closure.closed_on.isoformat()),
                ("outcome", codes.CLOSURE_OUT[episode.closure.outcome]),
            ],
        )
    return root


# -- kept content -------------------------------------------------------------------------------


def _find(root: etree._Element, path: object) -> etree._Element | None:
    """The element at an extension path (`/CAFEpisode/TeamAroundChild/Member[2]`), if written."""
    if not isinstance(path, str) or not (path == ROOT or path.startswith(ROOT + "/")):
        return None
    el = root
    for part in path[len(ROOT) + 1 :].split("/") if path != ROOT else ():
        name, _, index = part.partition("[")
        try:
            n = int(index[:-1]) if index else 1
        except ValueError:
            return None
        found = None
        wanted = Q + name
        for candidate in el:
            if candidate.tag == wanted:
                n -= 1
                if n == 0:
                    found = candidate
                    break
        if found is None:
            return None
        el = found
    return el


def _is_ecaf(el: etree._Element) -> bool:
    name = el.tag
    return isinstance(name, str) and name.startswith(Q)


def _inside_consent(el: etree._Element) -> bool:
    return any(local_name(a.tag) == "Consent" for a in (el, *el.iterancestors()))


def _after(parent: etree._Element, children: list[etree._Element], anchor: str) -> int:
    """Where to put content kept after `anchor` (`Review[2]`, `Closure`): the index after the
    written element of that step, or the end when it is not there. One pass, counting names."""
    repeatable = REPEATABLE.get(local_name(parent.tag), frozenset())
    counts: dict[str, int] = {}
    for i, child in enumerate(children):
        if not _is_ecaf(child):
            continue
        name = local_name(child.tag)
        n = counts[name] = counts.get(name, 0) + 1
        if (f"{name}[{n}]" if name in repeatable else name) == anchor:
            return i + 1
    return len(children)


def _restore_elements(root: etree._Element, entries: object) -> None:
    """Put kept elements back after the element they followed (at the end if it is gone)."""
    if not isinstance(entries, list):
        return
    placed: dict[tuple[int, str | None], int] = {}  # (parent, anchor) -> how many put after it
    for entry in entries[:MAX_KEPT]:  # the reader never keeps more
        xml = entry.get("xml") if isinstance(entry, dict) else None
        if not isinstance(xml, str) or _ELEMENT_START.match(xml) is None:
            continue  # kept content is one element, never a prolog (no declaration, no DOCTYPE)
        parent = _find(root, entry.get("parent"))
        # Only into a container the reader knows (never into a value, which would spoil it), and
        # never into a consent.
        if (
            parent is None
            or local_name(parent.tag) not in KNOWN_CHILDREN
            or _inside_consent(parent)
        ):
            continue
        try:
            fragment = parse_xml(xml.encode("utf-8"))
        except AdapterError:
            continue
        parent_name = local_name(parent.tag)
        if fragment.tag in _KNOWN_TAGS.get(parent_name, ()) and not _restorable(
            entry, fragment, parent
        ):
            continue  # never let kept content say what a known element says
        after = entry.get("after")
        anchor = after if isinstance(after, str) else None
        children = [c for c in parent if isinstance(c.tag, str)]
        position = 0 if anchor is None else _after(parent, children, anchor)
        key = (id(parent), anchor)
        position += placed.get(key, 0)
        placed[key] = placed.get(key, 0) + 1
        fragment.tail = "\n" if parent_name in _BLOCKS else None
        if position < len(children):
            children[position].addprevious(fragment)
        else:
            parent.append(fragment)


# Entries that stand on their own (a review, a parent, a TAC member, a plan action): one rejected
# goes back beside the others whatever was changed since. Not an address line nor an assessment's
# element or domain: they belong with their neighbours, which may have changed since (a family
# that moved, elements removed), and their place is only known by position.
_ENTRIES_ON_THEIR_OWN: Final = frozenset(
    {"Review", "Assessment", "ParentCarer", "Member", "Action"}
)


def _restorable(entry: Mapping[str, Any], fragment: etree._Element, parent: etree._Element) -> bool:
    """Whether content the reader rejected (a bad date, an unknown code) goes back: an entry that
    stands on its own does, beside the others; a single value only where the episode has none now
    (the national value wins, as someone may have corrected it since). Never a consent: the
    exchange never read it, so a withdrawal made since could not reach it, and it would come back
    live. What does not go back stays in the episode's extensions for people to read."""
    name = local_name(fragment.tag)
    if entry.get("rejected") is not True or name == "Consent":
        return False
    if name in REPEATABLE.get(local_name(parent.tag), ()):
        return name in _ENTRIES_ON_THEIR_OWN
    return parent.find(Q + name) is None


# Where kept text may go back: the containers the reader knows, and a Closure (attributes only).
# Never a value element (the text would become part of its value) and never inside a consent.
_TEXT_HOLDERS: Final = frozenset({*KNOWN_CHILDREN, "Closure"})


def _restore_texts(root: etree._Element, entries: object) -> None:
    """Put kept text back where it stood: first in its container, or after the element it
    followed (a tail is not part of that element's value; at the end when the element is gone).
    It takes the place of the layout there; set as text, it can never be markup."""
    if not isinstance(entries, list):
        return
    for entry in entries[:MAX_KEPT]:  # the reader never keeps more
        text = entry.get("text") if isinstance(entry, dict) else None
        if not isinstance(text, str) or not text or text.isspace():
            continue
        parent = _find(root, entry.get("parent"))
        if parent is None or local_name(parent.tag) not in _TEXT_HOLDERS or _inside_consent(parent):
            continue
        after = entry.get("after")
        children = [c for c in parent if isinstance(c.tag, str)]
        position = _after(parent, children, after) if isinstance(after, str) else 0
        holder = children[position - 1] if position else None
        there = parent.text if holder is None else holder.tail
        joined = text if there is None or there.isspace() else there + text
        try:
            if holder is None:
                parent.text = joined
            else:
                holder.tail = joined
        except ValueError:  # a character XML 1.0 cannot hold: it stays in the extension
            continue


def _restore_attributes(root: etree._Element, entries: object) -> None:
    if not isinstance(entries, list):
        return
    for entry in entries[:MAX_KEPT]:
        if not isinstance(entry, dict):
            continue
        name, value = entry.get("name"), entry.get("value")
        el = _find(root, entry.get("element"))
        if el is None or not isinstance(name, str) or not isinstance(value, str):
            continue
        if _inside_consent(el) or name in RECOGNISED_ATTRIBUTES.get(local_name(el.tag), ()):
            continue
        try:
            el.set(name, value)
        except (ValueError, TypeError):
            continue


def write_episode(episode: Episode) -> bytes:
    authority = authority_by_gss(episode.home_authority)
    if authority is None:
        raise AdapterError(
            "unsupported_format",
            "eCAF names authorities by DfE LA number, and none is known for this authority",
            "/home_authority",
        )
    kept = episode.extensions.get(FORMAT, {})
    try:
        root = _build(episode, authority.dfe, kept)
    except ValueError:  # lxml refuses text that XML 1.0 cannot hold (control characters)
        raise AdapterError(
            "unsupported_format", "a text holds characters that XML 1.0 cannot carry"
        ) from None
    _restore_attributes(root, kept.get("attributes"))
    _restore_texts(root, kept.get("texts"))
    _restore_elements(root, kept.get("elements"))
    return _DECLARATION + etree.tostring(root, encoding="UTF-8")
