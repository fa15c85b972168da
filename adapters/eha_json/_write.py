"""National episodes of one family -> one eha-json document (the layout: the package docstring).

`render(patched=False)` is the canonical rendering the reader diffs a document against; with patches
it is the exact original. Extensions are read defensively: an episode from another format (or with
edited extensions) is written from its national fields alone.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from schemas import (
    AgencyRef,
    ConsentRole,
    ConsentStatement,
    ElementAssessment,
    Episode,
    EpisodeState,
    ParentCarer,
    Practitioner,
)

from .._base import AdapterError
from . import _patch
from ._codes import (
    AREA_IN,
    AREA_OUT,
    CLOSURE_OUT,
    ECAF_OUT,
    NAME,
    consent_givers,
    format_date,
    sex_out,
    split_name,
)

__all__ = ["child_name", "render"]

_PARENT_WORDS = frozenset(
    {"mother", "father", "parent", "mum", "dad", "stepmother", "stepfather", "step-parent"}
)
_OPEN_STATES = frozenset({EpisodeState.OPEN, EpisodeState.POTENTIAL})


def child_name(episode: Episode) -> str:
    return f"{episode.child.given_names} {episode.child.family_name}"


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _copy(value: Any) -> Any:
    """A value from extensions, unshared, so that patching the output cannot change an episode."""
    return copy.deepcopy(value) if isinstance(value, dict | list) else value


def _add_once(items: list[tuple[int, Any]], owner: int, item: Any) -> None:
    """Another child's episode may carry the same family-level element: write it once. Repeats
    within one episode are the episode's own and are all written."""
    if not any(who != owner and _patch.same(item, other) for who, other in items):
        items.append((owner, item))


def _index(entry: dict[str, Any], kind: str) -> int | None:
    value = entry.get(kind)
    return value if type(value) is int and value >= 0 else None


def practitioner(p: Practitioner, *, lead: bool) -> dict[str, Any]:
    if not lead:
        return {
            "fullName": p.name,
            "team": p.role,
            "service": p.organisation,
            "serviceType": p.agency_type.name,
            "phone": p.telephone,
            "email": p.email,
        }
    out: dict[str, Any] = {"name": p.name}
    if p.role is not None:
        out["team"] = p.role
    out |= {"service": p.organisation, "serviceType": p.agency_type.name, "phone": p.telephone}
    if p.email is not None:
        out["email"] = p.email
    return out


def agency(ref: AgencyRef, *, as_object: bool) -> Any:
    """shareWith entries are written as "HOUSING", doNotShareWith entries as {"agencyType": ...}
    (what the examples do); a name or authority always needs the object form."""
    if not as_object and ref.name is None and ref.authority is None and ref.agency_type:
        return ref.agency_type.name
    out: dict[str, Any] = {"agencyType": ref.agency_type.name if ref.agency_type else None}
    if ref.name is not None:
        out["name"] = ref.name
    if ref.authority is not None:
        out["authority"] = ref.authority
    return out


def note_text(element: ElementAssessment) -> str:
    """A note carries one text: the needs. Strengths (only in episodes from other formats) are
    folded into it rather than dropped."""
    body = element.needs or ""
    if element.strengths:
        body = (
            f"{body} (going well: {element.strengths})"
            if body
            else f"going well: {element.strengths}"
        )
    return f"{ECAF_OUT[element.element]}: {body}"


class _Family:
    def __init__(self, episodes: Sequence[Episode], patched: bool) -> None:
        if not episodes:
            raise AdapterError("schema_violation", "there is no episode to write", "/")
        if len({e.family_ref for e in episodes}) > 1:
            raise AdapterError(
                "schema_violation",
                "episodes of different families cannot share one EHA document",
                "/family/familyRef",
            )
        self.patched = patched
        exts = [_dict(e.extensions.get(NAME)) for e in episodes]
        self.family = next((_dict(x["family"]) for x in exts if "family" in x), {})
        order = [r for r in _list(self.family.get("members")) if isinstance(r, str)]
        rank = {ref: i for i, ref in enumerate(order)}

        def position(i: int) -> tuple[int, int]:
            ref = exts[i].get("personRef")
            return (rank.get(ref, len(rank)) if isinstance(ref, str) else len(rank), i)

        ranked = sorted(range(len(episodes)), key=position)
        self.episodes = [episodes[i] for i in ranked]
        self.exts = [exts[i] for i in ranked]
        self.order = order
        self.used = set(order)
        self.counter = 0
        assigned: set[str] = set()

        def claim(ref: Any) -> str | None:
            if isinstance(ref, str) and ref and ref not in assigned:
                assigned.add(ref)
                self.used.add(ref)
                return ref
            return None

        child_refs = [claim(x.get("personRef")) for x in self.exts]
        primary = self.episodes[0]
        adults_ext = [_dict(a) for a in _list(self.family.get("adults"))]
        if len(adults_ext) != len(primary.parents_carers):
            adults_ext = [{} for _ in primary.parents_carers]
        adults: list[tuple[ParentCarer, str | None, dict[str, Any]]] = [
            (p, claim(x.get("personRef")), x)
            for p, x in zip(primary.parents_carers, adults_ext, strict=True)
        ]
        for episode in self.episodes[1:]:  # adults only other children's episodes name
            for p in episode.parents_carers:
                # Episodes of one family read together share their adults: `is` finds them first,
                # and the models' `==` (field by field, in Python) is left for the others.
                if any(p is known for known, _, _ in adults):
                    continue
                if all(p != known for known, _, _ in adults):
                    adults.append((p, None, {}))
        self.child_refs = [ref or self._new_ref() for ref in child_refs]
        self.adults = [(p, ref or self._new_ref(), x) for p, ref, x in adults]
        self.names: dict[str, tuple[ConsentRole, str]] = {
            ref: (ConsentRole.YOUNG_PERSON, child_name(e))
            for ref, e in zip(self.child_refs, self.episodes, strict=True)
        }
        self.names |= {ref: (ConsentRole.PARENT_CARER, p.name) for p, ref, _ in self.adults}

    def _new_ref(self) -> str:
        while True:
            self.counter += 1
            ref = f"P{self.counter}"
            if ref not in self.used:
                self.used.add(ref)
                return ref

    def _patch(self, value: Any, kept: Any) -> Any:
        return _patch.apply(value, kept) if self.patched else value

    # -- members --------------------------------------------------------------------------------

    def _child(self, episode: Episode, ref: str, ext: dict[str, Any]) -> dict[str, Any]:
        child = episode.child
        member: dict[str, Any] = {
            "personRef": ref,
            "role": "CHILD",
            "firstName": child.given_names,
            "lastName": child.family_name,
            "dob": format_date(child.date_of_birth),
            "sex": sex_out(child.gender),
            "ethnicityCode": child.ethnicity.value if child.ethnicity else None,
            "nhsNo": child.identifiers.nhs_number,
            "upn": child.identifiers.upn,
        }
        kept = _dict(ext.get("member"))
        if "youngCarer" in kept:
            member["youngCarer"] = _copy(kept["youngCarer"])
        return dict(self._patch(member, kept.get("patches")))

    def _adult(self, p: ParentCarer, ref: str, ext: dict[str, Any]) -> dict[str, Any]:
        role = ext.get("role")
        if role not in ("PARENT", "CARER"):
            role = "PARENT" if p.relationship.strip().lower() in _PARENT_WORDS else "CARER"
        first, last = split_name(p.name)
        member: dict[str, Any] = {
            "personRef": ref,
            "role": role,
            "firstName": first,
            "lastName": last,
            "relationship": p.relationship,
            "parentalResponsibility": p.parental_responsibility,
            "phone": p.telephone,
        }
        if p.email is not None:
            member["email"] = p.email
        return dict(self._patch(member, ext.get("patches")))

    def members(self) -> list[dict[str, Any]]:
        by_ref: dict[str, dict[str, Any]] = {}
        for episode, ref, ext in zip(self.episodes, self.child_refs, self.exts, strict=True):
            by_ref[ref] = self._child(episode, ref, ext)
        for p, ref, ext in self.adults:
            by_ref[ref] = self._adult(p, ref, ext)
        known = [ref for ref in self.order if ref in by_ref]
        rest = [ref for ref in by_ref if ref not in set(known)]
        return [by_ref[ref] for ref in known + rest]

    def address(self) -> dict[str, Any] | None:
        address = self.episodes[0].child.address
        if address is None:
            return None
        lines = list(address.lines)
        if len(lines) > 3:  # the case system has three address lines
            lines[2:] = [", ".join(lines[2:])]
        out: dict[str, Any] = {"line1": lines[0] if lines else None}
        for number, line in enumerate(lines[1:], start=2):
            out[f"line{number}"] = line
        out |= {"town": address.town, "postcode": address.postcode}
        return out

    # -- areas and notes ------------------------------------------------------------------------

    def _applies(self, element: ElementAssessment, child_ref: str, foreign: bool) -> Any:
        if element.applies_to is None and not foreign:
            return None
        wanted = element.applies_to or []
        refs = [r for r in wanted if r in self.names]
        return refs if refs or (not wanted and not foreign) else [child_ref]

    def areas_and_notes(self) -> tuple[list[Any], list[Any]]:
        areas: dict[int, Any] = {}
        notes: dict[int, Any] = {}
        new_areas: list[tuple[int, Any]] = []  # (whose episode, area) for elements with no origin
        new_notes: list[tuple[int, Any]] = []
        for owner, (episode, ref, ext) in enumerate(
            zip(self.episodes, self.child_refs, self.exts, strict=True)
        ):
            elements = episode.assessments[0].elements if episode.assessments else []
            entries = [_dict(e) for e in _list(ext.get("elements"))]
            if len(entries) != len(elements):
                entries = [{} for _ in elements]
            for element, entry in zip(elements, entries, strict=True):
                area_index, note_index = _index(entry, "area"), _index(entry, "note")
                if area_index in areas or note_index in notes:
                    continue  # written already, from an earlier child's episode
                code = entry.get("code")
                if not isinstance(code, str) or AREA_IN.get(code) != element.element:
                    code = AREA_OUT.get(element.element)
                if area_index is not None and code is not None:
                    area = self._area(element, code, self._applies(element, ref, False), entry)
                    areas[area_index] = self._patch(area, entry.get("patches"))
                elif note_index is not None:
                    notes[note_index] = self._patch(note_text(element), entry.get("patches"))
                elif code is not None:
                    area = self._area(element, code, self._applies(element, ref, True), {})
                    _add_once(new_areas, owner, area)
                else:
                    _add_once(new_notes, owner, note_text(element))
            for key, raw in _dict(ext.get("areas")).items():  # areas with no national element
                if key.isdigit():
                    areas.setdefault(int(key), _copy(raw))
        for key, raw in _dict(self.family.get("notes")).items():
            if key.isdigit():
                notes.setdefault(int(key), _copy(raw))
        return (
            [areas[i] for i in sorted(areas)] + [area for _, area in new_areas],
            [notes[i] for i in sorted(notes)] + [note for _, note in new_notes],
        )

    @staticmethod
    def _area(
        element: ElementAssessment, code: str, applies: Any, entry: dict[str, Any]
    ) -> dict[str, Any]:
        area: dict[str, Any] = {
            "area": code,
            "appliesTo": applies,
            "worries": element.needs,
            "goingWell": element.strengths,
        }
        if "scale" in entry:
            area["scale"] = _copy(entry["scale"])
        return area

    # -- consent --------------------------------------------------------------------------------

    def _given_by(self, episode: Episode, ref: str, statement: ConsentStatement) -> list[str]:
        kept = [r for r in _list(self.family.get("consentGivenBy")) if r in self.names]
        if kept and consent_givers(kept, ref, self.names) == statement.given_by:
            return kept  # the family's list, siblings' own consent included
        refs: list[str] = []
        for giver in statement.given_by:
            if giver.role is ConsentRole.YOUNG_PERSON:
                found: str | None = ref
            else:
                found = next(
                    (r for p, r, _ in self.adults if p.name == giver.name and r not in refs), None
                )
            if found is not None and found not in refs:
                refs.append(found)
        return refs

    def consent(self) -> Any:
        for episode, ref in zip(self.episodes, self.child_refs, strict=True):
            if episode.consents:
                c = episode.consents[0]
                return {
                    "obtained": True,
                    "date": format_date(c.given_on),
                    "type": c.method.name,
                    "givenBy": self._given_by(episode, ref, c),
                    "youngPersonCompetent": c.young_person_competent,
                    "shareWith": [agency(a, as_object=False) for a in c.share_with],
                    "doNotShareWith": [agency(a, as_object=True) for a in c.excluded],
                    "withdrawnDate": format_date(c.withdrawn_on),
                }
        return _copy(self.family.get("consent"))  # consent not obtained: kept as it was

    # -- the document ---------------------------------------------------------------------------

    def document(self) -> dict[str, Any]:
        primary = self.episodes[0]
        assessment = next((e.assessments[0] for e in self.episodes if e.assessments), None)
        family: dict[str, Any] = {"familyRef": primary.family_ref}
        address = self.address()
        if address is not None:
            family["address"] = address
        family["members"] = self.members()
        areas, notes = self.areas_and_notes()
        doc: dict[str, Any] = {
            "assessmentId": primary.local_ref,
            "authority": primary.home_authority,
            "dateStarted": format_date(assessment.started_on) if assessment else None,
            "dateCompleted": format_date(assessment.completed_on) if assessment else None,
            "worker": practitioner(assessment.assessor, lead=False) if assessment else None,
            "family": family,
            "reason": assessment.reason if assessment else None,
            "areas": areas,
            "notes": notes,
            "parentViews": assessment.parent_comments if assessment else None,
            "plan": [
                {
                    "need": a.need,
                    "action": a.action,
                    "who": a.responsible,
                    "when": format_date(a.due_on),
                    "outcome": a.ecm_outcome.value if a.ecm_outcome else None,
                }
                for a in primary.delivery_plan
            ],
            "consent": self.consent(),
            "leadPractitioner": (
                practitioner(primary.lead_professional, lead=True)
                if primary.lead_professional
                else None
            ),
            "status": "OPEN" if primary.state in _OPEN_STATES else "CLOSED",
        }
        if primary.closure is not None:
            closure: dict[str, Any] = {
                "date": format_date(primary.closure.closed_on),
                "reason": CLOSURE_OUT[primary.closure.outcome],
            }
            if primary.closure.notes is not None:
                closure["notes"] = primary.closure.notes
            doc["closure"] = closure
        if "customFields" in self.family:
            doc["customFields"] = _copy(self.family["customFields"])
        return dict(self._patch(doc, self.family.get("patches")))


def render(episodes: Sequence[Episode], *, patched: bool = True) -> dict[str, Any]:
    """The family's document as JSON values; `patched=False` gives the canonical rendering."""
    return _Family(episodes, patched).document()
