"""National episodes of one family -> one eha-json document (the layout: the package docstring).

`render(patched=False, alike=True)` is the canonical rendering the reader diffs a document against;
with patches it is the exact original. Extensions are read defensively: an episode from another
format (or with edited extensions) is written from its national fields alone.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, TypeVar

from schemas import (
    AgencyRef,
    ConsentRole,
    ConsentStatement,
    ElementAssessment,
    Episode,
    EpisodeState,
    ParentCarer,
    Practitioner,
    Problem,
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
from ._shared import (
    ADDRESS,
    ADULT,
    ASSESSMENT,
    COMPETENCE,
    CONSENT,
    ELEMENT,
    LEAD,
    PLAN,
    REFERENCE,
    SEEN,
    STATUS,
    ConsentCopy,
    ElementCopy,
    Part,
    narrowed,
    pick,
    young_gave,
)

__all__ = ["child_name", "render", "write"]

T = TypeVar("T")

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


def _code(element: ElementAssessment, entry: dict[str, Any]) -> str | None:
    """The area code: as read (HOME_ENVIRONMENT or FINANCE) while it still fits the element."""
    code = entry.get("code")
    if isinstance(code, str) and AREA_IN.get(code) == element.element:
        return code
    return AREA_OUT.get(element.element)


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
    def __init__(self, episodes: Sequence[Episode], patched: bool, alike: bool = False) -> None:
        if not episodes:
            raise AdapterError("schema_violation", "there is no episode to write", "/")
        if len({e.family_ref for e in episodes}) > 1:
            raise AdapterError(
                "schema_violation",
                "episodes of different families cannot share one EHA document",
                "/family/familyRef",
            )
        self.patched = patched
        self.alike = alike
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

        self.seen = _dict(self.family.get(SEEN))
        self.warnings: list[Problem] = []
        child_refs = [claim(x.get("personRef")) for x in self.exts]
        primary = self.episodes[0]
        kept_adults = _list(self.family.get("adults"))
        adults_ext = [_dict(a) for a in kept_adults]
        count = len(primary.parents_carers)
        aligned = [0]
        if len(adults_ext) != count:
            adults_ext = [{} for _ in primary.parents_carers]
        elif alike:  # one set of adults: the first child's are everyone's
            aligned = list(range(len(self.episodes)))
        elif "family" in self.exts[0]:
            # Episodes read from one document: their k-th adult is one person, copied per child.
            # (Adults of episodes from elsewhere may be other people: they are added, below.)
            aligned = [
                i
                for i, (e, x) in enumerate(zip(self.episodes, self.exts, strict=True))
                if len(e.parents_carers) == count
                and _dict(x.get("family")).get("adults") == kept_adults
            ]
        sources = aligned[:1] if alike else aligned
        copies = [[self.episodes[i].parents_carers[k] for i in sources] for k in range(count)]
        adults: list[tuple[ParentCarer, str | None, dict[str, Any]]] = [
            (
                self._pick(f"adult/{k}", copies[k], ADULT, ("parents_carers", k)),
                claim(x.get("personRef")),
                x,
            )
            for k, x in enumerate(adults_ext)
        ]
        known = [p for k in range(count) for p in copies[k]]
        for i, episode in enumerate(self.episodes):  # adults only other children's episodes name
            if i in aligned:
                continue
            for p in episode.parents_carers:
                # Episodes of one family read together share their adults: `is` finds them first,
                # and the models' `==` (field by field, in Python) is left for the others.
                if any(p is other for other in known):
                    continue
                if all(p != other for other in known):
                    adults.append((p, None, {}))
                    known.append(p)
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

    def _pick(
        self,
        name: str,
        copies: Sequence[T],
        part: Part[T],
        path: tuple[str | int, ...] | None = None,
        location: str | None = None,
    ) -> T:
        """The copy of a family-level part to write (`_shared.pick`)."""
        if self.alike:
            return copies[0]
        return pick(name, copies, part, self.seen, self.warnings, path=path, location=location)

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
        address = self._pick("address", [e.child.address for e in self.episodes], ADDRESS)
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
        # Each area and note of the document, with the episodes' copies of it (a family-level
        # area is in every child's episode) in member order, one per distinct object.
        area_copies: dict[int, list[ElementCopy]] = {}
        note_copies: dict[int, list[ElementCopy]] = {}
        kept_areas: dict[int, Any] = {}
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
                index = _index(entry, "area")
                table = area_copies if index is not None else note_copies
                if index is None:
                    index = _index(entry, "note")
                if index is not None:
                    found = table.get(index)
                    if found is None:
                        table[index] = [(element, ref, entry)]
                    elif element is not found[0][0]:  # the same object is the same copy
                        found.append((element, ref, entry))
                    continue
                code = _code(element, entry)
                if code is not None:
                    area = self._area(element, code, self._applies(element, ref, True), {})
                    _add_once(new_areas, owner, area)
                else:
                    _add_once(new_notes, owner, note_text(element))
            for key, raw in _dict(ext.get("areas")).items():  # areas with no national element
                if key.isdigit():
                    kept_areas.setdefault(int(key), raw)
        areas: dict[int, Any] = {}
        for index, copies in area_copies.items():
            element, ref, entry = (
                copies[0] if len(copies) == 1 else self._element("area", index, copies)
            )
            code = _code(element, entry)
            if code is None:  # now an element the case system has no area for
                _add_once(new_notes, -1, note_text(element))  # -1: no episode's own repeat
                continue
            area = self._area(element, code, self._applies(element, ref, False), entry)
            areas[index] = self._patch(area, entry.get("patches"))
        notes: dict[int, Any] = {}
        for index, copies in note_copies.items():
            element, _, entry = (
                copies[0] if len(copies) == 1 else self._element("note", index, copies)
            )
            notes[index] = self._patch(note_text(element), entry.get("patches"))
        for index, raw in kept_areas.items():
            areas.setdefault(index, _copy(raw))
        for key, raw in _dict(self.family.get("notes")).items():
            if key.isdigit():
                notes.setdefault(int(key), _copy(raw))
        return (
            [areas[i] for i in sorted(areas)] + [area for _, area in new_areas],
            [notes[i] for i in sorted(notes)] + [note for _, note in new_notes],
        )

    def _element(self, kind: str, index: int, copies: list[ElementCopy]) -> ElementCopy:
        return self._pick(f"{kind}/{index}", copies, ELEMENT, location=f"/{kind}s/{index}")

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
        copies: list[ConsentCopy] = [
            (e, ref, e.consents[0])
            for e, ref in zip(self.episodes, self.child_refs, strict=True)
            if e.consents
        ]
        if not copies:
            return _copy(self.family.get("consent"))  # consent not obtained: kept as it was
        episode, ref, c = self._pick("consent", copies, CONSENT)
        # Whichever copy is written, it shares no wider than any of them: an exclusion recorded in
        # one child's episode, or an agency taken off its sharing, holds for the family's.
        excluded = [*c.excluded]
        for _, _, other in copies:
            excluded += [a for a in other.excluded if a not in excluded]
        share_with = [a for a in c.share_with if all(a in s.share_with for _, _, s in copies)]
        if excluded != c.excluded or share_with != c.share_with:
            self.warnings.append(narrowed("/consent"))
        # Competence is the young person's who gave consent, so it is read from a statement one
        # gave; a sibling's statement (adults only) says nothing about it.
        young = [s.young_person_competent for _, _, s in copies if young_gave(s)]
        competent = (
            self._pick("competence", young, COMPETENCE) if young else c.young_person_competent
        )
        return {
            "obtained": True,
            "date": format_date(c.given_on),
            "type": c.method.name,
            "givenBy": self._given_by(episode, ref, c),
            "youngPersonCompetent": competent,
            "shareWith": [agency(a, as_object=False) for a in share_with],
            "doNotShareWith": [agency(a, as_object=True) for a in excluded],
            "withdrawnDate": format_date(c.withdrawn_on),
        }

    # -- the document ---------------------------------------------------------------------------

    def document(self) -> dict[str, Any]:
        copies = self.episodes[:1] if self.alike else self.episodes
        primary = self.episodes[0]
        reference = self._pick("reference", copies, REFERENCE)
        status = self._pick("status", copies, STATUS)
        assessments = [e.assessments[0] for e in copies if e.assessments]
        assessment = self._pick("assessment", assessments, ASSESSMENT) if assessments else None
        plan = self._pick("plan", [e.delivery_plan for e in copies], PLAN)
        lead = self._pick("lead", [e.lead_professional for e in copies], LEAD)
        family: dict[str, Any] = {"familyRef": primary.family_ref}
        address = self.address()
        if address is not None:
            family["address"] = address
        family["members"] = self.members()
        areas, notes = self.areas_and_notes()
        doc: dict[str, Any] = {
            "assessmentId": reference.local_ref,
            "authority": reference.home_authority,
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
                for a in plan
            ],
            "consent": self.consent(),
            "leadPractitioner": practitioner(lead, lead=True) if lead else None,
            "status": "OPEN" if status.state in _OPEN_STATES else "CLOSED",
        }
        if status.closure is not None:
            closure: dict[str, Any] = {
                "date": format_date(status.closure.closed_on),
                "reason": CLOSURE_OUT[status.closure.outcome],
            }
            if status.closure.notes is not None:
                closure["notes"] = status.closure.notes
            doc["closure"] = closure
        if "customFields" in self.family:
            doc["customFields"] = _copy(self.family["customFields"])
        return dict(self._patch(doc, self.family.get("patches")))


def render(
    episodes: Sequence[Episode], *, patched: bool = True, alike: bool = False
) -> dict[str, Any]:
    """The family's document as JSON values; `patched=False` gives the canonical rendering.
    `alike` says the episodes were just read from one document, so that their family-level parts
    are one set of objects: the first child's copies are taken without comparing them."""
    return _Family(episodes, patched, alike).document()


def _one_family(episodes: Sequence[Episode]) -> None:
    """Refuse episodes that are not known to be one family's. One document holds one family: it
    has one reference, authority, status and address, and lists every child as a sibling of the
    others, so children of different families in it would be linked falsely and see each other's
    details. Episodes are one family when they share a `family_ref`; without one (a register row,
    an eCAF or step-down episode, an EHA document with no familyRef), only when they were read
    from one EHA document: each carries that document's family part (with the digests the reader
    keeps for several children) and a person ref of its own among its members. Children of one
    family whose copies of a family-level part differ are not refused: `_shared` picks the copy."""
    if len(episodes) < 2:
        return
    if len({e.episode_id for e in episodes}) < len(episodes):  # the child would be its own sibling
        raise AdapterError(
            "schema_violation",
            "an episode is given twice; an EHA document lists each child once",
            "/family/members",
        )
    if len({e.family_ref for e in episodes}) > 1:
        raise AdapterError(
            "schema_violation",
            "episodes of different families cannot share one EHA document",
            "/family/familyRef",
        )
    if episodes[0].family_ref is not None:
        return
    exts = [_dict(e.extensions.get(NAME)) for e in episodes]
    family = exts[0].get("family")
    refs = [x.get("personRef") for x in exts]
    members = _list(family.get("members")) if isinstance(family, dict) else []
    if not (
        isinstance(family, dict)
        and SEEN in family
        and all(x.get("family") == family for x in exts[1:])
        and len(set(refs)) == len(refs)
        and all(isinstance(ref, str) and ref in members for ref in refs)
    ):
        raise AdapterError(
            "schema_violation",
            "episodes without a family_ref are not known to be one family; an EHA document "
            "holds one family (write each such episode as a document of its own)",
            "/family/familyRef",
        )


def write(episodes: Sequence[Episode]) -> tuple[dict[str, Any], list[Problem]]:
    """The family's document, and a warning for each family-level part whose copies differed
    between the children's episodes (which copy was written, by which rule: `_shared`).
    Episodes that are not one family's are refused (`_one_family`)."""
    _one_family(episodes)
    family = _Family(episodes, patched=True)
    return family.document(), family.warnings
