"""One eha-json document -> one national episode per child, with a fidelity report.

How a family splits into episodes, and what extensions keep, is in the package docstring.
Values are checked field by field (`_fields`, `_people`) so that a problem is reported at its JSON
pointer with a rule name; the national models then only see values already known to be good.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from schemas import (
    CONSENT_ID_MAX,
    AgencyRef,
    Assessment,
    Child,
    Closure,
    ConsentGiver,
    ConsentRole,
    ConsentStatement,
    ElementAssessment,
    Episode,
    ParentCarer,
    PlanAction,
    Problem,
    Source,
    validate_episode,
)

from .._base import AdapterError, Fate, Translation
from .._safe import json_text_problems, parse_json
from . import _patch
from ._codes import (
    AGENCY_IN,
    AGENCY_KEYS,
    AREA_IN,
    AREA_KEYS,
    CLOSURE_IN,
    CLOSURE_KEYS,
    CONSENT_KEYS,
    ECAF_IN,
    ECM_IN,
    FAMILY_KEYS,
    METHOD_IN,
    NAME,
    PLAN_KEYS,
    ROLES,
    ROOT_KEYS,
    STATUS_IN,
    consent_givers,
)
from ._fields import EXT, fail, model_error
from ._people import PeopleReader
from ._shared import SEEN, digests
from ._write import render

__all__ = ["read"]

_NOTE = re.compile(r"\s*([A-Za-z][A-Za-z_.]*)\s*:\s*(.*?)\s*\Z", re.DOTALL)
# A difference inside one member, area or note belongs to that object's extensions.
_SCOPED = re.compile(r"/(family/members|areas|notes)/(\d+)(?=/|\Z)")
# Where a national field's problem is in the document, for errors raised on assembly.
_EPISODE_LOCATIONS = {
    "home_authority": "/authority",
    "state": "/status",
    "closure": "/closure",
    "local_ref": "/assessmentId",
    "family_ref": "/family/familyRef",
}
# Patches that belong together (`_patch`): keys written from one national value.
_NAME_KEYS = (("/firstName", "/lastName"),)
_ADDRESS_KEYS = (("/family/address",),)
_CONSENT_LOCATIONS = {"given_on": "/consent/date", "withdrawn_on": "/consent/withdrawnDate"}


_STATEMENT = ":consent"


def _statement_id(reference: str | None) -> str:
    """The consent statement's id, "<assessmentId>:consent" (or the family's reference): control
    characters left out and the reference cut to fit, since the id is kept in plain columns and sent
    to other members (1 to `CONSENT_ID_MAX` characters, none a control character). It is not written
    back: the document has no consent id of its own."""
    return f"{(_cleaned(reference or '') or NAME)[: CONSENT_ID_MAX - len(_STATEMENT)]}{_STATEMENT}"


def _cleaned(reference: str) -> str:
    """A reference without its control characters (NUL and C1 among them, which `str.strip`
    keeps) and without the white space around it: empty when nothing else was there."""
    return "".join(c for c in reference if unicodedata.category(c) != "Cc").strip()


@dataclass(slots=True)
class _Kid:
    """One CHILD member on its way to becoming an episode."""

    ref: str
    child: Child
    member: dict[str, Any]
    elements: list[ElementAssessment] = field(default_factory=list)
    entries: list[dict[str, Any]] = field(default_factory=list)
    areas: dict[str, Any] = field(default_factory=dict)


class _Reader(PeopleReader):
    def __init__(self) -> None:
        super().__init__()
        self.family_ext: dict[str, Any] = {}
        self.problems: list[Problem] = []
        # Areas and notes several children hold: (kind, index, element).
        self.shared: list[tuple[str, int, ElementAssessment]] = []

    def translate(self, doc: dict[str, Any], received_at: dt.datetime) -> Translation:
        self.unknown(doc, ROOT_KEYS, "")
        fam = self.obj(doc.get("family"), "/family", "family")
        self.unknown(fam, FAMILY_KEYS, "/family")
        family_ref = self.text(fam, "familyRef", "/family", "family_ref")
        address = self.address(fam)
        kids: list[_Kid] = []
        adults: list[tuple[ParentCarer, dict[str, Any]]] = []
        names: dict[str, tuple[ConsentRole, str]] = {}
        members = self.array(fam, "members", "/family", "child")
        for i, value in enumerate(members):
            at = f"/family/members/{i}"
            m = self.obj(value, at, "a member")
            # Kept exactly as written: appliesTo and givenBy must match it character for character.
            ref = self.required_text(m, "personRef", at, f"{EXT}.personRef", free=True)
            if ref in names:
                fail(f"{at}/personRef", "personRef repeats another member's")
            role = self.required_code(m, "role", at, f"{EXT}.role", ROLES, "member.role")
            if role == "CHILD":
                child, kept = self.child(m, at, address)
                kids.append(_Kid(ref, child, kept))
                names[ref] = (ConsentRole.YOUNG_PERSON, f"{child.given_names} {child.family_name}")
            else:
                adult = self.adult(m, at)
                adults.append((adult, {"personRef": ref, "role": role}))
                names[ref] = (ConsentRole.PARENT_CARER, adult.name)
        if not kids:
            fail("/family/members", "the family has no CHILD member, so there is no episode")
        self.family_ext["members"] = list(names)
        self.family_ext["adults"] = [kept for _, kept in adults]

        assessment = self.assessment(doc, kids, names)
        consent = self.consent(doc, names, doc.get("assessmentId"), family_ref)
        plan = [
            self.plan_action(item, f"/plan/{i}")
            for i, item in enumerate(self.array(doc, "plan", "", "delivery_plan"))
        ]
        lead = doc.get("leadPractitioner")
        if "leadPractitioner" in doc and lead is None:
            self.add("/leadPractitioner", Fate.MAPPED, "lead_professional")
        lead_professional = (
            None
            if lead is None
            else self.practitioner(lead, "/leadPractitioner", "lead_professional", lead=True)
        )
        local_ref = self.text(doc, "assessmentId", "", "local_ref")
        authority = self.authority(doc)
        state = self.required_code(doc, "status", "", "state", STATUS_IN, "status.eha")
        closure = self.closure(doc)
        if "customFields" in doc:
            self.family_ext["customFields"] = doc["customFields"]
            self.add("/customFields", Fate.EXTENDED, f"{EXT}.family.customFields")

        source = Source(format=NAME, received_at=received_at)
        statements: dict[tuple[tuple[ConsentRole, str], ...], ConsentStatement] = {}
        drafts = []
        for kid in kids:
            assessments = []
            if assessment is not None:
                assessments = [assessment.model_copy(update={"elements": kid.elements})]
            consents = []
            if consent is not None:
                givers = consent_givers(consent[1], kid.ref, names)
                if givers:
                    key = tuple((g.role, g.name) for g in givers)
                    if key not in statements:
                        statements[key] = self.statement(consent[0], givers)
                    consents = [statements[key]]
            ext: dict[str, Any] = {"personRef": kid.ref, "member": kid.member}
            if kid.entries:
                ext["elements"] = kid.entries
            if kid.areas:
                ext["areas"] = kid.areas
            ext["family"] = self.family_ext
            drafts.append(
                {
                    "episode_id": uuid.uuid4(),
                    "local_ref": local_ref,
                    "home_authority": authority,
                    "state": state,
                    "source": source,
                    "family_ref": family_ref,
                    "child": kid.child,
                    "parents_carers": [p for p, _ in adults],
                    "assessments": assessments,
                    "consents": consents,
                    "lead_professional": lead_professional,
                    "delivery_plan": plan,
                    "closure": closure,
                    "extensions": {NAME: ext},
                }
            )
        if consent is not None and not any(d["consents"] for d in drafts):
            # Consent obtained from nobody who counts for any child: keep it as it is.
            self.family_ext["consent"] = doc["consent"]
        if len(kids) > 1:  # each child's episode has a copy of the family's parts
            self.family_ext[SEEN] = digests(
                local_ref=local_ref,
                authority=authority,
                state=state,
                closure=closure,
                plan=plan,
                lead=lead_professional,
                address=address,
                assessment=assessment,
                statements=list(statements.values()),
                adults=[adult for adult, _ in adults],
                elements=self.shared,
            )
        episodes = self.episodes(drafts)
        if self.keep_differences(doc, episodes, kids, adults):
            episodes = self.episodes(drafts)  # again, with the differences in extensions
        warnings = self.postcode_warnings(episodes[0]) + self.problems
        return Translation(episodes, self.report, warnings=warnings)

    def assessment(
        self, doc: dict[str, Any], kids: list[_Kid], names: Mapping[str, Any]
    ) -> Assessment | None:
        areas = self.array(doc, "areas", "", "assessments.elements")
        notes = self.array(doc, "notes", "", "assessments.elements")
        present = ("dateStarted", "worker", "reason", "dateCompleted", "parentViews")
        if not areas and not notes and all(doc.get(k) is None for k in present):
            for key in present:
                if key in doc:
                    self.add(f"/{key}", Fate.MAPPED, "assessments")
            return None  # a family document with no assessment yet
        for i, value in enumerate(areas):
            self.area(value, i, kids, names)
        for i, value in enumerate(notes):
            self.note(value, i, kids)
        started = self.required_date(doc, "dateStarted", "", "assessments.started_on")
        completed = self.date(doc, "dateCompleted", "", "assessments.completed_on")
        if completed is not None and completed < started:
            self.add(
                "/dateCompleted",
                Fate.REJECTED,
                "assessments.completed_on",
                "dates.completed_before_started",
                "dateCompleted is before dateStarted",
            )
            completed = None
        if doc.get("worker") is None:
            fail("/worker", "worker is required")
        assessor = self.practitioner(doc["worker"], "/worker", "assessments.assessor", lead=False)
        try:
            return Assessment(
                version=1,
                started_on=started,
                completed_on=completed,
                assessor=assessor,
                reason=self.required_text(doc, "reason", "", "assessments.reason", free=True),
                parent_comments=self.text(
                    doc, "parentViews", "", "assessments.parent_comments", free=True
                ),
            )
        except ValidationError as exc:
            model_error(exc, "/", {"started_on": "/dateStarted", "reason": "/reason"})

    def area(self, value: Any, i: int, kids: list[_Kid], names: Mapping[str, Any]) -> None:
        at = f"/areas/{i}"
        applies: list[str] | None = None
        element = None
        if isinstance(value, dict):
            if value.get("appliesTo") is not None:
                applies = self.refs(value["appliesTo"], f"{at}/appliesTo", names)
            raw_code = value.get("area")
            code = raw_code.strip().upper() if isinstance(raw_code, str) else None
            element = AREA_IN.get(code) if code else None
        wanted = {k.ref for k in kids} & set(applies or ())
        holders = [k for k in kids if k.ref in wanted] or kids  # no child named: family-level
        if element is None or not isinstance(value, dict):
            self.add(at, Fate.EXTENDED, f"{EXT}.areas", "area.no_national_element")
            for kid in holders:
                kid.areas[str(i)] = value
            return
        self.unknown(value, AREA_KEYS, at)
        self.add_key(at, "area", Fate.TRANSFORMED, "assessments.elements.element", "area.eha_code")
        if "appliesTo" in value:
            self.add_key(at, "appliesTo", Fate.MAPPED, "assessments.elements.applies_to")
        entry: dict[str, Any] = {"area": i, "code": code}
        if "scale" in value:
            scale = entry["scale"] = value["scale"]
            self.add_key(at, "scale", Fate.EXTENDED, f"{EXT}.elements.scale")
            if scale is not None and (type(scale) is not int or not 0 <= scale <= 10):
                self.problems.append(
                    Problem(
                        ("areas", i, "scale"),
                        "scale.0_to_10",
                        "scale is kept, but it is not a whole number from 0 to 10",
                        "warning",
                    )
                )
        assessed = ElementAssessment(
            element=element,
            needs=self.text(value, "worries", at, "assessments.elements.needs", free=True),
            strengths=self.text(
                value, "goingWell", at, "assessments.elements.strengths", free=True
            ),
            applies_to=applies,
        )
        for kid in holders:
            kid.elements.append(assessed)
            kid.entries.append(entry)
        if len(holders) > 1:
            self.shared.append(("area", i, assessed))

    def note(self, value: Any, i: int, kids: list[_Kid]) -> None:
        at = f"/notes/{i}"
        match = _NOTE.match(value) if isinstance(value, str) else None
        element = ECAF_IN.get(match[1].upper()) if match else None
        if match is None or element is None:
            self.add(at, Fate.EXTENDED, f"{EXT}.family.notes", "note.no_ecaf_code")
            self.family_ext.setdefault("notes", {})[str(i)] = value
            return
        # A note is the element's needs: that is what the examples' facts say of every note.
        self.add(at, Fate.TRANSFORMED, "assessments.elements.needs", "note.ecaf_code")
        assessed = ElementAssessment(element=element, needs=match[2])
        entry = {"note": i}
        for kid in kids:
            kid.elements.append(assessed)
            kid.entries.append(entry)
        if len(kids) > 1:
            self.shared.append(("note", i, assessed))

    def plan_action(self, value: Any, at: str) -> PlanAction:
        item = self.obj(value, at, "a plan action")
        self.unknown(item, PLAN_KEYS, at)
        outcome = item.get("outcome")
        ecm = None
        if isinstance(outcome, str) and outcome.strip().lower() in ECM_IN:
            ecm = ECM_IN[outcome.strip().lower()]
            self.add_key(at, "outcome", Fate.MAPPED, "delivery_plan.ecm_outcome")
        elif outcome is not None:
            self.add(
                f"{at}/outcome",
                Fate.REJECTED,
                "delivery_plan.ecm_outcome",
                "ecm_outcome",
                "outcome is not an Every Child Matters outcome",
            )
        elif "outcome" in item:
            self.add_key(at, "outcome", Fate.MAPPED, "delivery_plan.ecm_outcome")
        try:
            return PlanAction(
                need=self.required_text(item, "need", at, "delivery_plan.need", free=True),
                action=self.required_text(item, "action", at, "delivery_plan.action", free=True),
                responsible=self.required_text(item, "who", at, "delivery_plan.responsible"),
                due_on=self.date(item, "when", at, "delivery_plan.due_on"),
                ecm_outcome=ecm,
            )
        except ValidationError as exc:
            model_error(exc, at, {})

    def agencies(self, c: dict[str, Any], key: str, *, excluded: bool) -> list[AgencyRef]:
        at = f"/consent/{key}"
        target = "consents.excluded" if excluded else "consents.share_with"
        out = []
        for i, item in enumerate(self.array(c, key, "/consent", target)):
            where = f"{at}/{i}"
            ref = None
            try:
                if isinstance(item, str) and item.strip().upper() in AGENCY_IN:
                    ref = AgencyRef(agency_type=AGENCY_IN[item.strip().upper()])
                elif isinstance(item, dict):
                    self.unknown(item, AGENCY_KEYS, where)
                    kind = item.get("agencyType")
                    folded = kind.strip().upper() if isinstance(kind, str) else None
                    if kind is None or folded in AGENCY_IN:
                        ref = AgencyRef(
                            agency_type=AGENCY_IN[folded] if folded else None,
                            name=self.text(item, "name", where, f"{target}.name"),
                            authority=self.text(item, "authority", where, f"{target}.authority"),
                        )
            except ValidationError:
                ref = None
            if ref is None:
                if excluded:  # dropping an exclusion would widen sharing: refuse instead
                    fail(where, "an exclusion the national schema cannot express")
                self.add(where, Fate.REJECTED, target, "agency_type.upper_case", "unknown agency")
                continue
            self.add(where, Fate.TRANSFORMED, target, "agency_type.upper_case")
            out.append(ref)
        return out

    def consent(
        self,
        doc: dict[str, Any],
        names: Mapping[str, Any],
        local_ref: Any,
        family_ref: str | None,
    ) -> tuple[dict[str, Any], list[str]] | None:
        """The statement's fields and the givers' refs: which givers count differs per child."""
        value = doc.get("consent")
        if value is None:
            if "consent" in doc:
                self.add("/consent", Fate.MAPPED, "consents")
            return None
        c = self.obj(value, "/consent", "consent")
        if c.get("obtained") is not True:
            self.add("/consent", Fate.EXTENDED, f"{EXT}.family.consent", "consent.not_obtained")
            self.family_ext["consent"] = c
            return None
        self.unknown(c, CONSENT_KEYS, "/consent")
        self.add("/consent/obtained", Fate.TRANSFORMED, "consents", "consent.obtained_is_statement")
        given_by = self.refs(c.get("givenBy"), "/consent/givenBy", names)
        self.add("/consent/givenBy", Fate.TRANSFORMED, "consents.given_by", "consent.person_ref")
        # Cleaned before the choice: an assessmentId of control characters only is no name.
        usable = isinstance(local_ref, str) and _cleaned(local_ref)
        reference = local_ref if usable else family_ref
        fields = {
            # The document has no consent id; the statement is named after the assessment.
            "consent_id": _statement_id(reference),
            "given_on": self.required_date(c, "date", "/consent", "consents.given_on"),
            "method": self.required_code(
                c, "type", "/consent", "consents.method", METHOD_IN, "consent.method"
            ),
            "young_person_competent": self.competence(c, given_by, names),
            "storage_agreed": True,  # obtained EHA consent covers recording and storing it
            "share_with": self.agencies(c, "shareWith", excluded=False),
            "excluded": self.agencies(c, "doNotShareWith", excluded=True),
            # A withdrawal that cannot be read must not leave the consent looking valid.
            "withdrawn_on": self.date(
                c, "withdrawnDate", "/consent", "consents.withdrawn_on", must_parse=True
            ),
        }
        self.family_ext["consentGivenBy"] = given_by
        return fields, given_by

    def competence(self, c: dict[str, Any], given_by: list[str], names: Mapping[str, Any]) -> Any:
        """youngPersonCompetent is about the young person who gave consent: with none among the
        givers it says nothing national, and is kept as written (the family's patches)."""
        if c.get("youngPersonCompetent") is not None and not any(
            names[ref][0] is ConsentRole.YOUNG_PERSON for ref in given_by
        ):
            self.add_key(
                "/consent",
                "youngPersonCompetent",
                Fate.EXTENDED,
                f"{EXT}.family.patches",
                "consent.competence_without_young_person",
            )
            return None
        return self.flag(c, "youngPersonCompetent", "/consent", "consents.young_person_competent")

    def statement(self, fields: dict[str, Any], givers: list[ConsentGiver]) -> ConsentStatement:
        """One child's statement. The competence is the young person's among ITS givers: a
        sibling's statement (only the adults) says nothing about anyone's competence."""
        if fields["young_person_competent"] is not None and not any(
            g.role is ConsentRole.YOUNG_PERSON for g in givers
        ):
            fields = {**fields, "young_person_competent": None}
        try:
            return ConsentStatement(given_by=givers, **fields)
        except ValidationError as exc:
            model_error(exc, "/consent", _CONSENT_LOCATIONS)

    def closure(self, doc: dict[str, Any]) -> Closure | None:
        value = doc.get("closure")
        if value is None:
            if "closure" in doc:
                self.add("/closure", Fate.MAPPED, "closure")
            return None
        c = self.obj(value, "/closure", "closure")
        self.unknown(c, CLOSURE_KEYS, "/closure")
        try:
            return Closure(
                closed_on=self.required_date(c, "date", "/closure", "closure.closed_on"),
                outcome=self.required_code(
                    c,
                    "reason",
                    "/closure",
                    "closure.outcome",
                    CLOSURE_IN,
                    "closure.eha_reason",
                ),
                notes=self.text(c, "notes", "/closure", "closure.notes", free=True),
            )
        except ValidationError as exc:
            model_error(exc, "/closure", {})

    # -- exactness ------------------------------------------------------------------------------

    @staticmethod
    def episodes(drafts: list[dict[str, Any]]) -> list[Episode]:
        episodes = []
        for draft in drafts:
            try:
                episodes.append(Episode.model_validate(draft))
            except ValidationError as exc:
                model_error(exc, "/", _EPISODE_LOCATIONS)
        return episodes

    def keep_differences(
        self,
        doc: dict[str, Any],
        episodes: list[Episode],
        kids: list[_Kid],
        adults: list[tuple[ParentCarer, dict[str, Any]]],
    ) -> bool:
        """Diff the document against its canonical rendering; keep each difference with the object
        it belongs to (a member, an area, a note) or, for the rest, with the family. True when
        there was a difference (the drafts' extensions have changed)."""
        found: list[_patch.Patch] = []
        rendered = render(episodes, patched=False, alike=True)
        _patch.diff(doc, rendered, "", found)
        if not found:
            return False
        members = self.family_ext["members"]
        kid_of = {k.ref: k for k in kids}
        adult_of = {kept["personRef"]: kept for _, kept in adults}
        scoped: dict[tuple[str, int], list[_patch.Patch]] = {}
        root: list[_patch.Patch] = []
        for kind, pointer, payload in found:
            match = _SCOPED.match(pointer)
            if match is None:
                root.append((kind, pointer, payload))
            else:
                scope = (match[1], int(match[2]))
                scoped.setdefault(scope, []).append((kind, pointer[match.end() :], payload))
        for (part, index), patches in scoped.items():
            holders: list[dict[str, Any]] = []
            kept = None
            if part == "family/members" and index < len(members):
                ref = members[index]
                if ref in kid_of:
                    holders = [kid_of[ref].member]
                else:  # an adult's firstName and lastName are both written from one name
                    holders = [adult_of[ref]]
                    member = rendered["family"]["members"][index]
                    kept = _patch.to_json(patches, member, _NAME_KEYS)
            else:
                kind_key = "area" if part == "areas" else "note"
                holders = [
                    entry
                    for kid in kids
                    for entry in kid.entries
                    if entry.get(kind_key) == index and type(entry.get(kind_key)) is int
                ]
            if holders:
                kept = kept or _patch.to_json(patches)
                for holder in holders:
                    holder["patches"] = kept
            else:  # not expected (unmapped parts render as they were): keep them absolute
                root.extend((k, f"/{part}/{index}{p}", v) for k, p, v in patches)
        if root:
            # The address's keys are all written from one national address.
            self.family_ext["patches"] = _patch.to_json(root, rendered, _ADDRESS_KEYS)
        return True

    def postcode_warnings(self, episode: Episode) -> list[Problem]:
        """Postcode warnings, once per family (every child carries the family's address)."""
        return [
            Problem(p.path, p.rule, p.message, p.severity, location="/family/address/postcode")
            for p in validate_episode(episode).warnings
            if p.path[:1] == ("child",)
        ]


def read(data: bytes, received_at: dt.datetime) -> Translation:
    doc = parse_json(data)  # which refuses lone UTF-16 surrogate escapes too
    controls = json_text_problems(data, doc)
    if controls:  # XML cannot hold them, the register refuses them: refused here, where read
        first = controls[0]
        raise AdapterError("schema_violation", first.message, first.where, controls)
    if not isinstance(doc, dict):
        fail("/", "an EHA document is a JSON object")
    return _Reader().translate(doc, received_at)
