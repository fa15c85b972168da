"""Closing summary -> national episode. The decisions are in the package docstring.

The document is read once into plain JSON (`_tree.to_json`); the national fields are taken out of
it, and what remains is the extension, reported field by field.
"""

from __future__ import annotations

import datetime as dt
import uuid
from functools import lru_cache
from typing import Any

from pydantic import JsonValue, ValidationError

from schemas import (
    Episode,
    EpisodeState,
    Ethnicity,
    IdentifierError,
    Problem,
    StepDown,
    is_gss_code,
    london_today,
    normalise_nhs_number,
    normalise_postcode,
    normalise_upn,
    problems_from,
    validate_episode,
)

from .._base import AdapterError, Fate, FidelityReport, FieldReport, Translation
from .._safe import parse_xml
from .._xsdate import TIMEZONE_DROPPED, without_timezone
from ._codes import (
    AGENCY_TYPES,
    ECAF_ELEMENTS,
    EXTENSION_RULES,
    FORMAT,
    GENDER_FROM_CIN,
    NS_PREFIX,
    ROOT,
    UNKNOWN_RULE,
)
from ._tree import to_json

__all__ = ["read"]

Path = tuple[str | int, ...]
Record = dict[str, JsonValue]

TARGET = f"extensions.{FORMAT}"
R = f"/{ROOT}"
CASE, CHILD, NAME = f"{R}/Case", f"{R}/Child", f"{R}/Child/Name"
PROFESSIONALS = f"{R}/ContinuingProfessionals"
PREFERRED = f"{R}/PreferredLeadProfessional"
_ETHNICITIES = frozenset(e.value for e in Ethnicity)
_IDENTIFIERS = (
    ("NHSNo", f"{CHILD}/NHSNo", "child.identifiers.nhs_number", "nhs_number", normalise_nhs_number),
    ("UPN", f"{CHILD}/UPN", "child.identifiers.upn", "upn", normalise_upn),
)
# Locations and targets written out once (they are keys of the report caches, too).
_NAMES = tuple(
    (key, f"{NAME}/{key}", field, f"child.{field}")
    for key, field in (("Given", "given_names"), ("Family", "family_name"))
)
SEX, BIRTH_DATE = f"{CHILD}/Sex", f"{CHILD}/BirthDate"
CASE_NUMBER, LA = f"{CASE}/CaseNumber", f"{CASE}/LA"
ETHNICITY, POSTCODE = f"{CHILD}/Ethnicity", f"{CHILD}/Postcode"
# Why what remains inside the national containers went to extensions.
_INNER_RULES = {"Case": {"SocialWorker": EXTENSION_RULES["InvolvementReason"]}}
_INCOMPLETE = EXTENSION_RULES["ContinuingProfessionals"]
_KEPT_REJECTED = "extension.rejected_value"  # rejected, and kept as written to be written back
_PROFESSIONAL_FIELDS = (("Name", "name"), ("Agency", "organisation"), ("AgencyType", "agency_type"))
_PROFESSIONAL_KEYS = tuple(local for local, _ in _PROFESSIONAL_FIELDS)

_FIELDS: dict[tuple[str, Fate, str | None, str | None, str | None], FieldReport] = {}
_FIELDS_LIMIT = 50_000
_MAPPED: dict[tuple[str, str, str | None], FieldReport] = {}  # the same, keyed as `mapped` is


def _field(
    location: str, fate: Fate, target: str | None, rule: str | None, message: str | None = None
) -> FieldReport:
    """Field reports are frozen values, the same from one document to the next: reuse them
    (building a few dozen per document was a fifth of the translation time)."""
    key = (location, fate, target, rule, message)
    found = _FIELDS.get(key)
    if found is None:
        if len(_FIELDS) >= _FIELDS_LIMIT:  # odd documents cannot grow it without bound
            _FIELDS.clear()
        found = _FIELDS[key] = FieldReport(location, fate, target, rule, message)
    return found


@lru_cache(maxsize=256)
def _professional(index: int, member: int) -> tuple[tuple[str, str, FieldReport], ...]:
    """(where, target, report) of a continuing professional's Name, Agency and AgencyType, as TAC
    member `member`: the same for every document (the reports are those `_Reader.mapped` makes)."""
    at = f"{PROFESSIONALS}/Professional[{index}]"
    places = [
        (f"{at}/{local}", f"tac_members.{member}.{field}") for local, field in _PROFESSIONAL_FIELDS
    ]
    return tuple(
        (where, target, FieldReport(where, Fate.MAPPED, target)) for where, target in places
    )


class _Spot:
    """A place in an extended value, with the report of a leaf there: made once, then shared by
    every document with a value there (locations and reports were most of the reading time)."""

    __slots__ = ("children", "report", "where")

    def __init__(self, where: str, report: FieldReport) -> None:
        self.where = where
        self.report = report
        self.children: dict[str | int, _Spot] = {}

    def child(self, step: str | int) -> _Spot:
        """The place of a key (or of a 1-based list position) under this one."""
        if isinstance(step, int):
            where = f"{self.where}[{step}]"
        else:
            where = f"{self.where}/text()" if step == "#text" else f"{self.where}/{step}"
        report = self.report
        spot = _Spot(
            where, FieldReport(where, report.fate, report.target, report.rule, report.message)
        )
        _grow(self.children)[step] = spot
        return spot


_CONTAINERS = (dict, list)  # a tuple: `dict | list` is built anew at each use
_EXTENDED: dict[tuple[str, str, str, str | None], _Spot] = {}
_spots = 0


def _grow(table: dict[Any, _Spot]) -> dict[Any, _Spot]:
    """`table`, about to get one more place; every place is forgotten when there are too many."""
    global _spots
    _spots += 1
    if _spots > _FIELDS_LIMIT:  # odd documents cannot grow them without bound
        _spots = 0
        _EXTENDED.clear()
    return table


def _extended(value: JsonValue, spot: _Spot, out: list[FieldReport]) -> None:
    if isinstance(value, dict):
        children = spot.children
        for key, item in value.items():
            place = children.get(key) or spot.child(key)
            if key[0] == "@" or key == "#text" or not isinstance(item, _CONTAINERS):
                out.append(place.report)
            else:
                _extended(item, place, out)
    elif isinstance(value, list):
        children = spot.children
        for index, each in enumerate(value, start=1):
            place = children.get(index) or spot.child(index)
            if isinstance(each, _CONTAINERS):
                _extended(each, place, out)
            else:
                out.append(place.report)
    else:
        out.append(spot.report)


@lru_cache(maxsize=1024)
def _extension(key: str) -> tuple[str, str, str]:
    """(where, target, rule) of what remains of a child of the root."""
    return _step(R, key), f"{TARGET}.{key}", EXTENSION_RULES.get(key, UNKNOWN_RULE)


@lru_cache(maxsize=1024)
def _inner_extension(key: str, inner: str) -> tuple[str, str, str]:
    """(where, target, rule) of what remains of a child of Case, Child, ContinuingProfessionals."""
    rule = _INNER_RULES.get(key, {}).get(inner, UNKNOWN_RULE)
    return _step(f"{R}/{key}", inner), f"{TARGET}.{key}.{inner}", rule


def _missing(where: str) -> AdapterError:
    return AdapterError("schema_violation", "a required element is missing or empty", where)


def _node(parent: Record, key: str, where: str) -> Record | None:
    """A child element that may occur once, as a dict (an element with only text gets `#text`)."""
    value = parent.get(key)
    if value is None:
        return None
    if isinstance(value, list):
        raise AdapterError("schema_violation", "element repeated", f"{where}/{key}[2]")
    if not isinstance(value, dict):
        value = parent[key] = {"#text": value} if value else {}
    return value


def _text(parent: Record, key: str, where: str) -> str | None:
    """Take the text of a child that may occur once; its attributes stay behind (extensions)."""
    value = parent.pop(key, None)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list):
        raise AdapterError("schema_violation", "element repeated", f"{where}/{key}[2]")
    if not isinstance(value, dict) or any(k[0] != "@" and k != "#text" for k in value):
        raise AdapterError("schema_violation", "expected text, found elements", f"{where}/{key}")
    text = value.pop("#text", "")
    parent[key] = value
    return text if isinstance(text, str) else None


def _step(where: str, key: str) -> str:
    """The XPath of a key of a `to_json` dict."""
    return f"{where}/text()" if key == "#text" else f"{where}/{key}"


def _simple(value: JsonValue) -> str | None:
    return value if isinstance(value, str) and value else None


class _Reader:
    def __init__(self, report: FidelityReport) -> None:
        self.fields = report.fields
        self.warnings: list[Problem] = []
        self.sources: dict[str, str] = {}  # national field (dotted) -> XPath, to locate errors
        self.kept: dict[str, str] = {}  # Child element -> the text of its rejected value

    def mapped(self, where: str, target: str, rule: str | None = None) -> None:
        found = _MAPPED.get((where, target, rule))
        if found is None:
            fate = Fate.MAPPED if rule is None else Fate.TRANSFORMED
            found = _field(where, fate, target, rule)
            if len(_MAPPED) < _FIELDS_LIMIT:
                _MAPPED[where, target, rule] = found
        self.fields.append(found)
        self.sources[target] = where

    def rejected(self, key: str, value: str, target: str, rule: str, message: str) -> None:
        """An optional value of the Child that fails its check: rejected, and kept as written (in
        `Child`, as the document has it) so that writing puts it back in its place."""
        where = f"{CHILD}/{key}"
        self.fields.append(_field(where, Fate.REJECTED, target, rule, message))
        self.fields.append(_field(where, Fate.EXTENDED, f"{TARGET}.Child.{key}", _KEPT_REJECTED))
        self.kept[key] = value

    def restore_rejected(self, tree: Record) -> None:
        """Put the rejected values back into the extension (after it is reported: they are
        reported where they were rejected)."""
        if not self.kept:
            return
        child = tree.get("Child")
        if not isinstance(child, dict):
            child = tree["Child"] = {}
        for key, value in self.kept.items():
            attributes = child.get(key)
            if isinstance(attributes, dict):
                attributes["#text"] = value
            else:
                child[key] = value

    def extended(
        self, value: JsonValue, where: str, target: str, rule: str, message: str | None = None
    ) -> None:
        """Report every text and attribute in `value` (a `to_json` value) as extended: an
        attribute at `.../@name`, text at `.../text()` (or at the element, when it is all there
        is), the n-th of repeated elements at `...[n]`."""
        key = (where, target, rule, message)
        spot = _EXTENDED.get(key)
        if spot is None:
            spot = _Spot(where, FieldReport(where, Fate.EXTENDED, target, rule, message))
            _grow(_EXTENDED)[key] = spot
        _extended(value, spot, self.fields)

    # --- the document -------------------------------------------------------------------------

    def read(self, tree: Record) -> dict[str, Any]:
        case, child = _node(tree, "Case", R), _node(tree, "Child", R)
        if case is None:
            raise _missing(CASE)
        if child is None:
            raise _missing(CHILD)
        local_ref, authority = self.case(case)
        child_doc = self.child(child)
        tac = self.professionals(tree)
        lead = self.preferred(tree, tac)
        self.check_needs(tree.get("UnmetNeeds"))
        self.check_consent(tree.get("ConsentToShare"))
        for key in ("Case", "Child", "ContinuingProfessionals"):
            if tree.get(key) == {}:
                del tree[key]
        self.report_extensions(tree)
        self.restore_rejected(tree)
        rule = "step_down.csc_closing_summary"
        self.fields.append(_field(R, Fate.TRANSFORMED, "source.step_down", rule))
        return {
            "episode_id": uuid.uuid4(),
            "local_ref": local_ref,
            "home_authority": authority,
            "state": EpisodeState.POTENTIAL,
            "child": child_doc,
            "lead_professional": lead,
            "tac_members": tac,
            "extensions": {FORMAT: tree} if tree else {},
        }

    def case(self, case: Record) -> tuple[str | None, str]:
        number = _text(case, "CaseNumber", CASE)
        if number:
            self.mapped(CASE_NUMBER, "local_ref")
        la = _text(case, "LA", CASE)
        if not la:
            raise _missing(LA)
        authority = la.upper()
        if not is_gss_code(authority):
            raise AdapterError(
                "schema_violation", "LA is not a GSS code (a country letter and 8 digits)", LA
            )
        self.mapped(LA, "home_authority", None if authority == la else "gss.upper")
        return number or None, authority

    def child(self, child: Record) -> dict[str, Any]:
        doc: dict[str, Any] = {}
        name = _node(child, "Name", CHILD)
        if name is None:
            raise _missing(NAME)
        for key, where, field, target in _NAMES:
            value = _text(name, key, NAME)
            if not value:
                raise _missing(where)
            doc[field] = value
            self.mapped(where, target)
        if not name:
            del child["Name"]
        sex = _text(child, "Sex", CHILD)
        if not sex:
            raise _missing(SEX)
        if sex not in GENDER_FROM_CIN:
            message = "Sex is not a CIN sex code (0, 1, 2 or 9)"
            raise AdapterError("schema_violation", message, SEX)
        doc["gender"] = GENDER_FROM_CIN[sex]
        self.mapped(SEX, "child.gender", "gender.cin_code")
        birth = _text(child, "BirthDate", CHILD)
        if birth:
            self.birth_date(birth, doc)
        identifiers: dict[str, str] = {}
        for key, where, target, field, normalise in _IDENTIFIERS:
            value = _text(child, key, CHILD)
            if not value:
                continue
            try:
                identifiers[field] = normalised = normalise(value)
            except IdentifierError as exc:
                self.rejected(key, value, target, exc.rule, exc.message)
                continue
            self.mapped(where, target, None if normalised == value else "identifier.normalise")
        doc["identifiers"] = identifiers
        ethnicity = _text(child, "Ethnicity", CHILD)
        if ethnicity:
            target = "child.ethnicity"
            if ethnicity.upper() in _ETHNICITIES:
                doc["ethnicity"] = ethnicity.upper()
                self.mapped(ETHNICITY, target, None if ethnicity.isupper() else "ethnicity.upper")
            else:
                message = "not a CIN census ethnicity code"
                self.rejected("Ethnicity", ethnicity, target, "ethnicity.code", message)
        postcode = _text(child, "Postcode", CHILD)
        if postcode:
            target = "child.address.postcode"
            try:
                normalised = normalise_postcode(postcode)
            except IdentifierError as exc:
                self.rejected("Postcode", postcode, target, exc.rule, exc.message)
            else:
                doc["address"] = {"postcode": normalised}
                rule = None if normalised == postcode else "postcode.normalise"
                self.mapped(POSTCODE, target, rule)
        for key in [k for k, v in child.items() if v == {}]:  # attribute-less leftovers
            del child[key]
        return doc

    def birth_date(self, value: str, doc: dict[str, Any]) -> None:
        key, target = "BirthDate", "child.date_of_birth"
        rule: str | None = None
        try:
            born = dt.date.fromisoformat(value)
        except ValueError:
            day = without_timezone(value)  # an xs:date may carry a time zone: it is dropped
            try:
                born = dt.date.fromisoformat(day or "")
            except ValueError:
                message = "not an ISO 8601 date (yyyy-mm-dd)"
                self.rejected(key, value, target, "date.iso", message)
                return
            rule = TIMEZONE_DROPPED
        if born > london_today():
            message = "the birth date is in the future"
            self.rejected(key, value, target, "dates.birth_in_future", message)
            return
        doc["date_of_birth"] = born
        if rule is None and born.isoformat() != value:
            rule = "date.iso"
        self.mapped(BIRTH_DATE, target, rule)

    def professionals(self, tree: Record) -> list[dict[str, Any]]:
        """Complete professionals become TAC members; the others stay whole in extensions."""
        container = _node(tree, "ContinuingProfessionals", R)
        if container is None:
            return []
        found = container.pop("Professional", [])
        tac: list[dict[str, Any]] = []
        extras: list[JsonValue] = []
        unmapped: list[JsonValue] = []
        for index, professional in enumerate(found if isinstance(found, list) else [found], 1):
            parts = professional if isinstance(professional, dict) else {}
            name, agency = _simple(parts.get("Name")), _simple(parts.get("Agency"))
            kind = _simple(parts.get("AgencyType"))
            if not (name and agency and kind in AGENCY_TYPES):
                missing = "AgencyType" if name and agency else "Agency" if name else "Name"
                message = f"{missing} missing or not a national value: not a complete practitioner"
                target = f"{TARGET}.ContinuingProfessionals.Professional"
                at = f"{PROFESSIONALS}/Professional[{index}]"
                self.extended(professional, at, target, _INCOMPLETE, message)
                unmapped.append(professional)
                continue
            places = _professional(index, len(tac))
            for local, (where, target, report) in zip(_PROFESSIONAL_KEYS, places, strict=True):
                del parts[local]
                self.fields.append(report)
                self.sources[target] = where
            if parts:
                at = f"{PROFESSIONALS}/Professional[{index}]"
                self.extended(parts, at, f"{TARGET}.#tac_members", UNKNOWN_RULE)
                # Named by who carried them: the national side may remove or reorder members.
                extras.append({"Name": name, "Agency": agency, **parts})
            tac.append({"name": name, "organisation": agency, "agency_type": kind})
        if unmapped:
            container["Professional"] = unmapped
        if extras:
            tree["#tac_members"] = extras
        return tac

    def preferred(self, tree: Record, tac: list[dict[str, Any]]) -> dict[str, Any] | None:
        """The family's preferred lead professional is national only when it names exactly one
        continuing professional: that is where its organisation and agency type come from."""
        value = tree.get("PreferredLeadProfessional")
        if value is None:
            return None
        matches = [t for t in tac if t["name"] == value] if isinstance(value, str) else []
        if len(matches) != 1:
            return None  # stays: reported with the other extensions
        del tree["PreferredLeadProfessional"]
        rule = "lead_professional.preferred_continuing_professional"
        self.mapped(PREFERRED, "lead_professional.name", rule)
        return dict(matches[0])

    def check_needs(self, needs: JsonValue) -> None:
        """Needs stay in extensions, but an element code eCAF does not know is worth a warning."""
        found = needs.get("Need") if isinstance(needs, dict) else None
        for n, need in enumerate(found if isinstance(found, list) else [], start=1):
            code = need.get("@element") if isinstance(need, dict) else None
            if code not in ECAF_ELEMENTS:
                where = f"{R}/UnmetNeeds/Need[{n}]/@element"
                path: Path = ("extensions", FORMAT, "UnmetNeeds", "Need", n - 1, "@element")
                message = "not an eCAF element code: the need names no CAF element"
                self.warnings.append(Problem(path, "element.ecaf_code", message, "warning", where))

    def check_consent(self, consent: JsonValue) -> None:
        """001 §3: step-down information always holds the family's consent to share. It has no
        national home (see the package docstring), so say when it is not there or not given."""
        given = consent.get("@given") if isinstance(consent, dict) else None
        if given in ("true", "1"):
            return
        where = f"{R}/ConsentToShare" + ("/@given" if isinstance(consent, dict) else "")
        path: Path = ("extensions", FORMAT, "ConsentToShare")
        message = "the closing summary does not record the family's consent to share"
        self.warnings.append(Problem(path, "consent.not_given", message, "warning", where))

    def report_extensions(self, tree: Record) -> None:
        """Everything left in the tree is the extension; say why, field by field."""
        for key, value in tree.items():
            if key in ("#tac_members",):
                continue  # reported with the professionals
            if key in ("Case", "Child", "ContinuingProfessionals") and isinstance(value, dict):
                for inner, item in value.items():
                    if key == "ContinuingProfessionals" and inner == "Professional":
                        continue  # reported with the professionals
                    self.extended(item, *_inner_extension(key, inner))
            elif key == "PreferredLeadProfessional":
                message = "names no single continuing professional: no organisation or agency type"
                self.extended(value, PREFERRED, f"{TARGET}.{key}", EXTENSION_RULES[key], message)
            else:
                self.extended(value, *_extension(key))

    def locate(self, path: Path) -> str:
        for end in range(len(path), 0, -1):
            where = self.sources.get(".".join(map(str, path[:end])))
            if where is not None:
                return where
        return R


def read(data: bytes, received_at: dt.datetime, report: FidelityReport) -> Translation:
    notes: list[Problem] = []  # about the document as a whole (how it was decoded)
    root = parse_xml(data, notes)
    if root.tag != f"{NS_PREFIX}{ROOT}":
        raise AdapterError("unsupported_format", f"the root element is not {ROOT} of {FORMAT}", "/")
    tree = to_json(root)
    reader = _Reader(report)
    doc = reader.read(tree if isinstance(tree, dict) else {})
    doc["source"] = {"format": FORMAT, "received_at": received_at, "step_down": StepDown.CSC}
    try:
        episode = Episode.model_validate(doc)
    except ValidationError as exc:
        problems = [
            Problem(p.path, p.rule, p.message, location=reader.locate(p.path))
            for p in problems_from(exc)
        ]
        raise AdapterError(
            "schema_violation", "not a valid episode", problems[0].where, problems
        ) from None
    warnings = [
        Problem(w.path, w.rule, w.message, w.severity, reader.locate(w.path))
        for w in validate_episode(episode).warnings
    ]
    return Translation([episode], report, warnings=notes + reader.warnings + warnings)
