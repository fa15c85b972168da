"""eCAF v3 XML -> one national episode, with a fidelity report (formats/README.md, "ecaf-xml-v3").

The document is walked once, each element's children in a single pass dispatched on the full tag: what
a field means is decided by namespace and local name, never by prefix or position. The episode is then
validated in one go. Only if that fails is it walked again, carefully: each list entry (a parent, an
assessment, a consent, a TAC member, a plan action, a review, an assessment element) validated on its
own, so an entry that cannot be used is reported rejected, field by field, and the rest still
imported. What the episode cannot do without (authority, status, the child's names and gender) makes
the whole document a `schema_violation`; an optional value that cannot be used is rejected alone.

Decisions worth knowing:
- A consent statement is all or nothing. One with anything this adapter does not understand (an unknown
  element or attribute, an unknown agency type or code) is not imported, because the part not
  understood might have narrowed it. No consent means no sharing, which is the safe side.
- `CompetenceAssessed` is written by eCAF only when it is true, so its absence reads as false.
- Each place is read for what eCAF writes there: a lead professional has no Role, a TAC member no
  Telephone or Email; anything else is kept. A practitioner's authority is read only from their own
  `LocalAuthority`: none is assumed from the episode's.
- Names, codes, dates and identifiers are trimmed; narrative text (reasons, strengths, needs, actions,
  progress) is kept exactly as written.
- A date may carry a time zone, as `xs:date` allows (`2025-05-14Z`, `2025-05-14+01:00`): the
  calendar date is kept and the offset dropped, reported transformed (`date.timezone_dropped`).
  Written back, the date has no time zone.
- Everything without a national home (`@schemaVersion`, unknown elements and attributes, text
  standing directly in a container rather than in a value: `<Child>note<Forename>`,
  `</Forename>note`) is kept in `extensions["ecaf-xml-v3"]`, to be written back by `from_national`
  where it was: an unknown element whole, as XML, with its values flattened beside it for people; a
  text as written (`texts`: its container and the element it followed), reported extended
  (`ecaf.stray_text`). At most `MAX_KEPT` of each, and never XInclude. Inside a consent, such text
  is content not understood: the consent is not imported.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

from lxml import etree
from pydantic import BaseModel, ValidationError

from schemas import (
    Assessment,
    Closure,
    ConsentStatement,
    Episode,
    EpisodeState,
    ParentCarer,
    PlanAction,
    Practitioner,
    Problem,
    Review,
    validate_episode,
)

from .._base import AdapterError, FidelityReport, Translation, utc_now
from .._safe import parse_xml
from . import _codes as codes
from . import _leaves as lv
from ._convert import Bad, leaf_text, short_text
from ._paths import FORMAT, ROOT, tag
from ._walk import Invalid, Leaf, Nested, Shape, Walk

__all__ = ["read_episode"]

ROOT_TAG = tag("CAFEpisode")


# -- handlers for elements with structure ---------------------------------------------------------
# A handler gets (walk, element, its location, its parent's written path, the parent's data, the
# parent's target prefix) and returns the step it will be written back under, or None.


def _single(data: dict[str, Any], key: str, w: Walk, el: etree._Element, location: str) -> bool:
    """A second copy of an element that appears once is rejected (the first is used)."""
    if key not in data:
        return True
    message = "given more than once; the first is used"
    w.reject_all(el, location, location, "ecaf.repeated", message, key, whole=True)
    return False


def _container(key: str, shape: Shape) -> Nested:
    """A non-repeating element whose content fills the dict `data[key]` (Child, Address)."""
    name = shape.name

    def handler(
        w: Walk, el: etree._Element, location: str, written: str, data: dict[str, Any], tpre: str
    ) -> str | None:
        if not _single(data, key, w, el, location):
            return None
        inner: dict[str, Any] = {}
        w.fill(el, shape, location, f"{written}/{name}", inner, f"{tpre}{key}.")
        data[key] = inner
        return name

    return Nested(name, handler)


def _group(shape: Shape) -> Nested:
    """A wrapper (ParentsCarers, TeamAroundChild) whose entries go into lists of the parent's data."""
    name = shape.name

    def handler(
        w: Walk, el: etree._Element, location: str, written: str, data: dict[str, Any], tpre: str
    ) -> str | None:
        w.fill(el, shape, location, f"{written}/{name}", data, tpre)
        return name

    return Nested(name, handler)


def _entry(key: str, model: type[BaseModel] | None, shape: Shape) -> Nested:
    """A repeating element that becomes one entry of the list `data[key]`."""
    name = shape.name

    def handler(
        w: Walk, el: etree._Element, location: str, written: str, data: dict[str, Any], tpre: str
    ) -> str | None:
        entries = data.get(key)
        if entries is None:
            entries = data[key] = []
        n = len(entries) + 1
        path = f"{written}/{name}[{n}]"
        entry = w.item(model, el, shape, location, path, f"{tpre}{key}[{n - 1}].")
        if entry is None:
            return None
        entries.append(entry)
        return f"{name}[{n}]"

    return Nested(name, handler, repeatable=True)


def _one(
    key: str,
    model: type[BaseModel],
    shape: Shape,
    refuse: Callable[[Walk], tuple[str, str] | None] | None = None,
) -> Nested:
    """A non-repeating element that becomes `data[key]`, an entry validated like a list entry.
    `refuse` may give a reason (rule, message) not to take it at all."""
    name = shape.name

    def handler(
        w: Walk, el: etree._Element, location: str, written: str, data: dict[str, Any], tpre: str
    ) -> str | None:
        if not _single(data, key, w, el, location):
            return None
        reason = refuse(w) if refuse is not None else None
        if reason is not None:
            w.reject_all(el, location, location, *reason, key, whole=True)
            return None
        entry = w.item(model, el, shape, location, f"{written}/{name}", f"{tpre}{key}.")
        if entry is None:
            return None
        data[key] = entry
        return name

    return Nested(name, handler)


def _line(
    w: Walk, el: etree._Element, location: str, written: str, data: dict[str, Any], tpre: str
) -> str | None:
    lines = data.get("lines")
    if lines is None:
        lines = data["lines"] = []
    if el.keys():
        w.check_attributes(el, location, f"{written}/Line[{len(lines) + 1}]", "Line")
    try:
        text = short_text(leaf_text(el))
    except Bad as bad:
        w.reject(location, f"{tpre}lines", bad.rule, bad.message)
        return None
    if text is None:
        w.ok(location, f"{tpre}lines", "ecaf.empty_is_absent")
        return None
    w.ok(location, f"{tpre}lines[{len(lines)}]")
    lines.append(text)
    return f"Line[{len(lines)}]"


def _practitioner(name: str, leaves: tuple[Leaf, ...]) -> Shape:
    return Shape(name, leaves={tag(leaf.name): leaf for leaf in leaves})


def _domain(
    w: Walk, el: etree._Element, location: str, written: str, data: dict[str, Any], tpre: str
) -> str | None:
    """A domain groups elements; the grouping follows from the element codes, so it is checked."""
    n = data["_domains"] + 1
    path = f"{written}/Domain[{n}]"
    elements: list[dict[str, Any]] = data["elements"]
    before = len(elements)
    data["_in_domain"] = 0
    w.fill(el, _DOMAIN, location, path, data, tpre)
    domain = el.get("code")
    if domain is not None:
        domain = domain.strip()
        ours = all(
            codes.ELEMENT_OUT[e["element"]].startswith(domain + ".") for e in elements[before:]
        )
        if domain in codes.DOMAINS and ours:
            w.ok(f"{location}/@code", f"{tpre}elements", "ecaf.domain_implied_by_element_codes")
        else:
            w.reject(
                f"{location}/@code",
                f"{tpre}elements",
                "ecaf.domain_mismatch",
                "the domain code does not match its elements' codes; each element's own code is used",
            )
    if len(elements) == before:
        return None
    data["_domains"] = n
    return f"Domain[{n}]"


def _element(
    w: Walk, el: etree._Element, location: str, written: str, data: dict[str, Any], tpre: str
) -> str | None:
    elements = data["elements"]
    k = data["_in_domain"] + 1
    # Not validated alone: once its code is known, nothing else in an element can fail.
    entry = w.item(
        None, el, _ELEMENT, location, f"{written}/Element[{k}]", f"{tpre}elements[{len(elements)}]."
    )
    if entry is None:
        return None
    elements.append(entry)
    data["_in_domain"] = k
    return f"Element[{k}]"


def _start_assessment(data: dict[str, Any]) -> None:
    data["elements"] = []
    data["_domains"] = 0


def _finish_assessment(w: Walk, data: dict[str, Any], tpre: str) -> None:
    del data["_domains"]
    data.pop("_in_domain", None)


def _start_consent(data: dict[str, Any]) -> None:
    data["given_by"], data["share_with"], data["excluded"] = [], [], []


def _finish_consent(w: Walk, data: dict[str, Any], tpre: str) -> None:
    data.setdefault(
        "young_person_competent", False
    )  # eCAF leaves CompetenceAssessed out when false


def _agencies(name: str, key: str) -> Nested:
    """SharingAgreedWith / SharingExcluded: a list of agency types, in the consent's `data[key]`."""
    agency = Shape("Agency", attributes=(lv.AGENCY,))

    def one(
        w: Walk, el: etree._Element, location: str, written: str, data: dict[str, Any], tpre: str
    ) -> str | None:
        entries = data[key]
        n = len(entries) + 1
        inner: dict[str, Any] = {}
        w.fill(el, agency, location, f"{written}/Agency[{n}]", inner, f"{tpre}{key}[{n - 1}].")
        entries.append(inner)
        return f"Agency[{n}]"

    return _group(Shape(name, nested={tag("Agency"): Nested("Agency", one, repeatable=True)}))


def _given_by(
    w: Walk, el: etree._Element, location: str, written: str, data: dict[str, Any], tpre: str
) -> str | None:
    givers = data["given_by"]
    n = len(givers) + 1
    inner: dict[str, Any] = {}
    w.fill(el, _GIVEN_BY, location, f"{written}/GivenBy[{n}]", inner, f"{tpre}given_by[{n - 1}].")
    givers.append(inner)
    return f"GivenBy[{n}]"


def _not_closed(w: Walk) -> tuple[str, str] | None:
    if w.state in (EpisodeState.CLOSED, None):
        return None
    return (
        "state.closure_without_closed_state",
        "a closure is recorded only on a closed episode, and Status is not Closed",
    )


_GIVEN_BY = Shape("GivenBy", attributes=(lv.GIVER_ROLE, lv.GIVER_NAME))
_ELEMENT = Shape("Element", attributes=(lv.ELEMENT_CODE,), leaves=lv.ELEMENT_LEAVES)
_DOMAIN = Shape("Domain", nested={tag("Element"): Nested("Element", _element, repeatable=True)})
_ASSESSMENT = Shape(
    "Assessment",
    attributes=lv.ASSESSMENT_ATTRIBUTES,
    leaves=lv.ASSESSMENT_LEAVES,
    nested={
        tag("Assessor"): _one(
            "assessor",
            Practitioner,
            _practitioner(
                "Assessor",
                (
                    lv.NAME,
                    lv.ROLE,
                    lv.ORGANISATION,
                    lv.AGENCY_TYPE,
                    lv.AUTHORITY,
                    lv.TELEPHONE,
                    lv.EMAIL,
                ),
            ),
        ),
        tag("Domain"): Nested("Domain", _domain, repeatable=True),
    },
    start=_start_assessment,
    finish=_finish_assessment,
)
_CONSENT = Shape(
    "Consent",
    attributes=lv.CONSENT_ATTRIBUTES,
    leaves=lv.CONSENT_LEAVES,
    nested={
        tag("GivenBy"): Nested("GivenBy", _given_by, repeatable=True),
        tag("SharingAgreedWith"): _agencies("SharingAgreedWith", "share_with"),
        tag("SharingExcluded"): _agencies("SharingExcluded", "excluded"),
    },
    start=_start_consent,
    finish=_finish_consent,
    strict=True,
)
_CHILD = Shape(
    "Child",
    leaves=lv.CHILD_LEAVES,
    nested={
        tag("Address"): _container(
            "address",
            Shape(
                "Address",
                leaves=lv.ADDRESS_LEAVES,
                nested={tag("Line"): Nested("Line", _line, repeatable=True)},
            ),
        ),
        tag("Identifiers"): _container(
            "identifiers", Shape("Identifiers", leaves=lv.IDENTIFIER_LEAVES)
        ),
    },
)
# eCAF writes a different set of practitioner details in each place; these are the sets it writes
# (a lead professional has no role, a TAC member no telephone or e-mail). LocalAuthority is read
# everywhere, so an explicit authority is never overridden by the episode's.
_ROOT_NESTED = {
    tag("Child"): _container("child", _CHILD),
    tag("ParentsCarers"): _group(
        Shape(
            "ParentsCarers",
            nested={
                tag("ParentCarer"): _entry(
                    "parents_carers",
                    ParentCarer,
                    Shape(
                        "ParentCarer",
                        attributes=(lv.PARENTAL_RESPONSIBILITY,),
                        leaves=lv.PARENT_LEAVES,
                    ),
                )
            },
        )
    ),
    tag("Assessment"): _entry("assessments", Assessment, _ASSESSMENT),
    tag("Consent"): _entry("consents", ConsentStatement, _CONSENT),
    tag("LeadProfessional"): _one(
        "lead_professional",
        Practitioner,
        _practitioner(
            "LeadProfessional",
            (lv.NAME, lv.ORGANISATION, lv.AGENCY_TYPE, lv.AUTHORITY, lv.TELEPHONE, lv.EMAIL),
        ),
    ),
    tag("TeamAroundChild"): _group(
        Shape(
            "TeamAroundChild",
            nested={
                tag("Member"): _entry(
                    "tac_members",
                    Practitioner,
                    _practitioner(
                        "Member", (lv.NAME, lv.ROLE, lv.ORGANISATION, lv.AGENCY_TYPE, lv.AUTHORITY)
                    ),
                )
            },
        )
    ),
    tag("DeliveryPlan"): _group(
        Shape(
            "DeliveryPlan",
            nested={
                tag("Action"): _entry(
                    "delivery_plan", PlanAction, Shape("Action", leaves=lv.PLAN_LEAVES)
                )
            },
        )
    ),
    tag("Review"): _entry(
        "reviews", Review, Shape("Review", attributes=lv.REVIEW_ATTRIBUTES, leaves=lv.REVIEW_LEAVES)
    ),
    tag("Closure"): _one(
        "closure", Closure, Shape("Closure", attributes=lv.CLOSURE_ATTRIBUTES), _not_closed
    ),
}


# -- the document ---------------------------------------------------------------------------------


# Where a required national field would have come from, for the error when the document lacks it.
_MISSING = {
    "child": f"{ROOT}/Child",
    "child.given_names": f"{ROOT}/Child/Forename",
    "child.family_name": f"{ROOT}/Child/Surname",
    "child.gender": f"{ROOT}/Child/Gender",
}


def _first(root: etree._Element, leaf: Leaf) -> Any:
    """Read a root leaf before the walk (the authority and state are needed while walking)."""
    el = root.find(tag(leaf.name))
    location = f"{ROOT}/{leaf.name}"
    if el is None:
        raise Invalid(location, "missing", "a value is required")
    try:
        value = leaf.convert(leaf_text(el))
    except Bad as bad:
        raise Invalid(location, bad.rule, bad.message) from None
    if value is None:
        raise Invalid(location, "missing", "a value is required")
    return value


def read_episode(data: bytes, received_at: dt.datetime | None = None) -> Translation:
    if received_at is not None and received_at.utcoffset() is None:
        raise ValueError("received_at must be timezone-aware")
    notes: list[Problem] = []  # about the document as a whole (how it was decoded)
    root = parse_xml(data, notes)
    if root.tag != ROOT_TAG:
        raise AdapterError(
            "unsupported_format", "the root element is not CAFEpisode in namespace urn:x-caf:ecaf:3"
        )
    received = received_at or utc_now()
    try:
        translation = _translate(root, received, careful=False)
    except ValidationError:
        # Walk again, validating each entry alone, so that only what fails is rejected.
        translation = _translate(root, received, careful=True)
    if notes:
        translation.warnings[:0] = notes
    return translation


def _translate(root: etree._Element, received_at: dt.datetime, careful: bool) -> Translation:
    try:
        _first(root, lv.ROOT_LEAVES[tag("LocalAuthority")])  # for a precise error when missing
        w = Walk(_first(root, lv.ROOT_LEAVES[tag("Status")]), careful)
        episode: dict[str, Any] = {}
        kept: dict[str, Any] = {}
        version = root.get("schemaVersion")
        if version is not None:
            kept["schemaVersion"] = version
            w.extended(f"{ROOT}/@schemaVersion", "ecaf.schema_version")
        if root.keys():
            w.check_attributes(root, ROOT, ROOT, "CAFEpisode")
        w.children(root, ROOT, ROOT, episode, "", lv.ROOT_LEAVES, _ROOT_NESTED)
    except Invalid as invalid:
        raise AdapterError(
            "schema_violation", f"{invalid.rule}: {invalid.message}", invalid.location
        ) from None
    if w.elements:
        kept["elements"] = w.elements
    if w.attributes:
        kept["attributes"] = w.attributes
    if w.texts:
        kept["texts"] = w.texts
    episode["episode_id"] = uuid.uuid4()
    episode["source"] = {"format": FORMAT, "received_at": received_at}
    if kept:
        episode["extensions"] = {FORMAT: kept}
    try:
        national = Episode.model_validate(episode)
    except ValidationError as exc:
        if not careful:
            raise
        location, rule, message = w.locate(exc, 0, "", ROOT, _MISSING)
        raise AdapterError("schema_violation", f"{rule}: {message}", location) from None
    checked = validate_episode(national)
    return Translation(
        [national], FidelityReport(FORMAT, w.fields), warnings=w.warnings + checked.warnings
    )
