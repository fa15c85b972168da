"""ecaf-xml-v3: eCAF's XML export, one episode per file.

Golden examples against their facts, documents as real exports vary them, the mapping rules, writing
back (and what must never be written), a round-trip property, and hostile XML.
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from lxml import etree

from adapters._base import AdapterError, Fate, Translation
from adapters._safe import MAX_DEPTH, MAX_DOCUMENT_BYTES, MAX_TEXT_CHARS, parse_xml
from adapters.ecaf_xml_v3 import ADAPTER, FORMAT, NS
from schemas import (
    AgencyType,
    ClosureOutcome,
    ConsentRole,
    Element,
    Episode,
    EpisodeState,
    Gender,
    Section,
)
from tests.adapters.facts import examples, facts_path, load_facts, mismatches
from tests.strategies import episodes

EXAMPLES = examples("ecaf-xml-v3", ".xml")
EXAMPLE = {p.stem: p.read_bytes() for p in EXAMPLES}
OTHER_FORMATS = [
    p
    for name, suffix in (
        ("csc-closure-xml", ".xml"),
        ("eha-json", ".json"),
        ("caf-register-csv", ".csv"),
    )
    for p in examples(name, suffix)
]
RECEIVED = dt.datetime(2026, 6, 1, 9, 0, tzinfo=dt.UTC)
# Facts an eCAF export does not carry, each because the document lacks it:
ABSENT = {
    "assessor.authority",  # an Assessor has no LocalAuthority in eCAF's export
    "lead_professional.role",  # a LeadProfessional has no Role
    "lead_professional.authority",  # ... and no LocalAuthority
    "tac.telephone",  # a TAC Member has name, role, organisation, agency type, authority only
    "tac.email",
}


def translate(data: bytes) -> Translation:
    return ADAPTER.to_national(data, received_at=RECEIVED)


def one(data: bytes) -> Episode:
    translation = translate(data)
    assert len(translation.episodes) == 1
    return translation.episodes[0]


def write(episode: Episode) -> bytes:
    return ADAPTER.from_national([episode])


def comparable(episode: Episode) -> dict[str, Any]:
    """An episode without what each translation makes afresh (its id, when it was received)."""
    data = episode.model_dump(mode="json")
    data.pop("episode_id")
    data["source"].pop("received_at")
    return data


def kept_elements(episode: Episode) -> list[dict[str, Any]]:
    """The unknown elements an episode keeps for eCAF (plain JSON, typed here for the tests)."""
    kept = episode.extensions.get(FORMAT, {}).get("elements", [])
    assert isinstance(kept, list) and all(isinstance(e, dict) for e in kept)
    return cast(list[dict[str, Any]], kept)


def refused(data: bytes) -> AdapterError:
    with pytest.raises(AdapterError) as caught:
        translate(data)
    return caught.value


def ecaf(*parts: str, status: str = "Open", la: str = "202", child: str = "") -> bytes:
    """A small eCAF document: a child (Ada, female) in Camden, plus `parts` at the end of the root."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<ecaf:CAFEpisode xmlns:ecaf="{NS}" schemaVersion="3.1">\n'
        "<ecaf:EpisodeRef>CAF-202-2025-00001</ecaf:EpisodeRef>\n"
        f"<ecaf:LocalAuthority>{la}</ecaf:LocalAuthority>\n"
        f"<ecaf:Status>{status}</ecaf:Status>\n"
        "<ecaf:Child>\n<ecaf:Forename>Ada</ecaf:Forename>\n<ecaf:Surname>Lovelace</ecaf:Surname>\n"
        f"<ecaf:Gender>F</ecaf:Gender>\n{child}<ecaf:Identifiers></ecaf:Identifiers>\n</ecaf:Child>\n"
        + "".join(f"{part}\n" for part in parts)
        + "</ecaf:CAFEpisode>"
    ).encode()


ASSESSOR = (
    "<ecaf:Assessor><ecaf:Name>Kai Murphy</ecaf:Name><ecaf:Organisation>Homerton</ecaf:Organisation>"
    "<ecaf:AgencyType>health</ecaf:AgencyType></ecaf:Assessor>"
)
CONSENT = (
    '<ecaf:Consent id="C1" date="2025-05-27" method="written">'
    '<ecaf:GivenBy role="parent" name="Zoë Costa"/><ecaf:Storage>true</ecaf:Storage>'
    '<ecaf:SharingAgreedWith><ecaf:Agency type="health"/></ecaf:SharingAgreedWith>'
    '<ecaf:SharingExcluded><ecaf:Agency type="police"/></ecaf:SharingExcluded>{}</ecaf:Consent>'
)


def assessment(*elements: str, domain: str = "DEV") -> str:
    return (
        '<ecaf:Assessment version="1" started="2025-05-14">'
        f"{ASSESSOR}<ecaf:ReasonForAssessment>Sleep</ecaf:ReasonForAssessment>"
        f'<ecaf:Domain code="{domain}">{"".join(elements)}</ecaf:Domain></ecaf:Assessment>'
    )


def element(code: str, strengths: str = "Kind", needs: str = "Sleep") -> str:
    return (
        f'<ecaf:Element code="{code}"><ecaf:Strengths>{strengths}</ecaf:Strengths>'
        f"<ecaf:Needs>{needs}</ecaf:Needs></ecaf:Element>"
    )


# -- golden examples ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_detects_its_examples(path: Path) -> None:
    assert ADAPTER.detect(path.read_bytes())


@pytest.mark.parametrize("path", OTHER_FORMATS, ids=lambda p: p.name)
def test_does_not_detect_other_formats(path: Path) -> None:
    assert not ADAPTER.detect(path.read_bytes())


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff\xfe",
        b"<CAFEpisode/>",  # no namespace
        b'<x:CAFEpisode xmlns:x="urn:x-caf:ecaf:2"/>',  # another version
        b'<x:Other xmlns:x="urn:x-caf:ecaf:3"/>',
        b'<!-- <ecaf:CAFEpisode xmlns:ecaf="urn:x-caf:ecaf:3"> --><r/>',
    ],
)
def test_does_not_detect_lookalikes(data: bytes) -> None:
    assert not ADAPTER.detect(data)


@given(st.binary(max_size=300))
def test_detect_never_raises(data: bytes) -> None:
    assert ADAPTER.detect(data) in (True, False)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_recovers_the_facts(path: Path) -> None:
    translation = translate(path.read_bytes())
    (facts,) = load_facts(facts_path(path))
    (episode,) = translation.episodes
    assert mismatches(episode, facts, absent=ABSENT) == []
    assert episode.source.format == FORMAT and episode.source.received_at == RECEIVED
    assert translation.warnings == [] and translation.rejected == []
    assert episode.extensions[FORMAT]["schemaVersion"] == "3.1"
    found = {
        f"{name.rsplit('/', 1)[-1]}={value}"
        for entry in kept_elements(episode)
        for name, value in entry["values"].items()
    }
    for extra in facts["extras"].values():  # local-only data: kept, and readable without the XML
        assert extra in found


def test_local_only_content_is_kept_whole_and_written_back_in_place() -> None:
    data = EXAMPLE["ecaf-xml-v3-102-0"]
    episode = one(data)
    (kept,) = kept_elements(episode)
    assert kept == {
        "parent": "/CAFEpisode",
        "after": "Closure",
        "xml": (
            f'<ecaf:LocalExtra xmlns:ecaf="{NS}" source="legacy">'
            "<ecaf:SchoolCluster>North 3</ecaf:SchoolCluster></ecaf:LocalExtra>"
        ),
        "values": {"LocalExtra/@source": "legacy", "LocalExtra/SchoolCluster": "North 3"},
    }
    written = write(episode)
    assert written.endswith(
        b'outcome="STEPPED-UP"/>\n<ecaf:LocalExtra source="legacy"><ecaf:SchoolCluster>'
        b"North 3</ecaf:SchoolCluster></ecaf:LocalExtra>\n</ecaf:CAFEpisode>"
    )


def test_cdata_and_a_very_long_text_are_read_whole() -> None:
    (facts,) = load_facts(facts_path(EXAMPLES[-1]))
    reason = one(EXAMPLE["ecaf-xml-v3-102-0"]).assessments[0].reason
    assert reason == facts["reason"] and "]]>" in reason and len(reason) > 8_000


def _plain(location: str) -> str:
    """Compare XPaths alike: no prefixes, no [1]."""
    return re.sub(r"\[1\]", "", location.replace("ecaf:", ""))


def local_fields(data: bytes) -> set[str]:
    """Every attribute and every element holding text, as XPaths (independently of the adapter)."""
    tree = etree.ElementTree(parse_xml(data))
    found: set[str] = set()
    for el in tree.iter():
        if not isinstance(el.tag, str):
            continue
        path = _plain(tree.getpath(el))
        found.update(f"{path}/@{name}" for name in el.keys())
        if not any(isinstance(c.tag, str) for c in el) and (el.text or "").strip():
            found.add(path)
    return found


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_local_field_is_accounted_for(path: Path) -> None:
    report = translate(path.read_bytes()).report
    assert report.format == FORMAT
    located = {_plain(f.location) for f in report.fields}
    kept_whole = {_plain(f.location) for f in report.fields if f.fate is Fate.EXTENDED}
    missing = [
        field
        for field in local_fields(path.read_bytes())
        if field not in located and not any(field.startswith(k + "/") for k in kept_whole)
    ]
    assert missing == []
    assert all(f.fate is not Fate.REJECTED for f in report.fields)
    assert all(f.target for f in report.fields)


def test_report_names_each_transformation() -> None:
    report = translate(EXAMPLE["ecaf-xml-v3-101-1"]).report
    by_location = {(f.location, f.target): f for f in report.fields}
    nhs = by_location[("/CAFEpisode/Child/Identifiers/NHSNumber", "child.identifiers.nhs_number")]
    assert (nhs.fate, nhs.rule) == (Fate.TRANSFORMED, "identifier.normalise")  # "776 697 6560"
    la = by_location[("/CAFEpisode/LocalAuthority", "home_authority")]
    assert (la.fate, la.rule) == (Fate.TRANSFORMED, "authority.dfe_to_gss")
    gender = by_location[("/CAFEpisode/Child/Gender", "child.gender")]
    assert (gender.fate, gender.rule) == (Fate.TRANSFORMED, "gender.ecaf_letter")
    name = by_location[("/CAFEpisode/Child/Forename", "child.given_names")]
    assert (name.fate, name.rule) == (Fate.MAPPED, None)
    version = by_location[("/CAFEpisode/@schemaVersion", f"extensions.{FORMAT}")]
    assert version.fate is Fate.EXTENDED
    element_code = by_location[
        (
            "/CAFEpisode/Assessment[1]/Domain[2]/Element[3]/@code",
            "assessments[0].elements[4].element",
        )
    ]
    assert (element_code.fate, element_code.rule) == (Fate.TRANSFORMED, "element.ecaf_code")


def meaning(data: bytes) -> list[tuple[str, str]]:
    """What a document says, in order: each attribute and text by path, whatever its layout, prefix
    or CDATA. Identifiers are compared normalised (the national form has no spaces)."""
    said: list[tuple[str, str]] = []

    def visit(el: etree._Element, path: str) -> None:
        said.extend((f"{path}/@{k}", v) for k, v in sorted(el.items()))
        children = [c for c in el if isinstance(c.tag, str)]
        text = (el.text or "").strip()
        if not children and text:
            identifier = path.endswith(("/NHSNumber[1]", "/UPN[1]", "/ULN[1]"))
            said.append((path, text.replace(" ", "") if identifier else text))
        counts: dict[str, int] = {}
        for child in children:
            name = etree.QName(child).localname
            counts[name] = counts.get(name, 0) + 1
            visit(child, f"{path}/{name}[{counts[name]}]")

    visit(parse_xml(data), "/CAFEpisode")
    return said


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_round_trip_says_the_same(path: Path) -> None:
    episode = one(path.read_bytes())
    written = write(episode)
    assert meaning(written) == meaning(path.read_bytes())
    assert comparable(one(written)) == comparable(episode)
    assert write(one(written)) == written  # and writing is stable


@pytest.mark.parametrize("name", ["ecaf-xml-v3-101-0", "ecaf-xml-v3-101-2"])
def test_round_trip_is_byte_for_byte_when_nothing_was_normalised(name: str) -> None:
    """eCAF's own layout: declaration, prefix, element order, line breaks, empty elements."""
    assert write(one(EXAMPLE[name])) == EXAMPLE[name]


# -- documents as real exports vary them ----------------------------------------------------------

BASE = EXAMPLE["ecaf-xml-v3-101-0"]
_SCALARS = (
    "EpisodeRef|LocalAuthority|Status|Forename|Surname|DateOfBirth|Gender|Postcode|NHSNumber|ByWhen"
)


def _reorder(data: bytes) -> bytes:
    """Children of the root and of the child in another order (same-name siblings keep theirs)."""
    root = etree.fromstring(data)
    for parent in (root, root.find(f"{{{NS}}}Child")):
        assert parent is not None
        children = sorted(parent, key=lambda c: str(c.tag), reverse=True)
        for child in children:
            parent.append(child)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _reindent(data: bytes) -> bytes:
    root = etree.fromstring(data)
    etree.indent(root, space="    ")
    pretty = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return re.sub(
        rb"(<ecaf:(" + _SCALARS.encode() + rb")>)([^<]*)<", rb"\1\n      \3  \n  <", pretty
    )


def _cdata(data: bytes) -> bytes:
    root = etree.fromstring(data)
    for el in root.iter():
        if isinstance(el.tag, str) and len(el) == 0 and el.text:
            el.text = etree.CDATA(el.text)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


VARIANTS: dict[str, Callable[[bytes], bytes]] = {
    "other prefix": lambda d: (
        d.replace(b"<ecaf:", b"<c:").replace(b"</ecaf:", b"</c:").replace(b"xmlns:ecaf", b"xmlns:c")
    ),
    "default namespace": lambda d: (
        d.replace(b"<ecaf:", b"<").replace(b"</ecaf:", b"</").replace(b"xmlns:ecaf", b"xmlns")
    ),
    "BOM": lambda d: b"\xef\xbb\xbf" + d,
    "CRLF": lambda d: d.replace(b"\n", b"\r\n"),
    "ISO-8859-1": lambda d: (
        d.decode()
        .replace('encoding="UTF-8"', 'encoding="ISO-8859-1"')
        .encode("latin-1", "xmlcharrefreplace")
    ),
    "UTF-16": lambda d: (
        d.decode().replace('encoding="UTF-8"', 'encoding="UTF-16"').encode("utf-16")
    ),
    "pretty-printed, spaces around values": _reindent,
    "element order": _reorder,
    "CDATA everywhere": _cdata,
    "comments": lambda d: d.replace(b"<ecaf:Child>", b"<!-- c --><ecaf:Child><!-- c -->").replace(
        b"<ecaf:Surname>Costa", b"<ecaf:Surname>Co<!-- checked -->sta"
    ),
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_variants_read_alike(variant: str) -> None:
    data = VARIANTS[variant](BASE)
    assert data != BASE
    assert ADAPTER.detect(data)
    assert comparable(one(data)) == comparable(one(BASE))


def test_latin1_names_survive() -> None:
    data = VARIANTS["ISO-8859-1"](BASE)
    assert "Zoë".encode("latin-1") in data
    assert one(data).parents_carers[0].name == "Zoë Costa"


# -- the mapping ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("letter", "gender"), [("M", Gender.MALE), ("F", Gender.FEMALE), ("U", Gender.UNKNOWN)]
)
def test_gender_letters(letter: str, gender: Gender) -> None:
    data = ecaf().replace(b"<ecaf:Gender>F", f"<ecaf:Gender>{letter}".encode())
    assert one(data).child.gender is gender


@pytest.mark.parametrize(
    ("word", "state"), [("Open", EpisodeState.OPEN), ("Closed", EpisodeState.CLOSED)]
)
def test_status_words(word: str, state: EpisodeState) -> None:
    assert one(ecaf(status=word)).state is state


@pytest.mark.parametrize(
    ("data", "location", "rule"),
    [
        (
            ecaf().replace(b"Gender>F<", b"Gender>X<"),
            "/CAFEpisode/Child/Gender",
            "gender.unknown_code",
        ),
        (ecaf(status="Pending"), "/CAFEpisode/Status", "status.unknown_code"),
        (ecaf(la="999"), "/CAFEpisode/LocalAuthority", "authority.unknown_dfe_number"),
        (ecaf(la="E09000007"), "/CAFEpisode/LocalAuthority", "authority.unknown_dfe_number"),
        (
            ecaf().replace(b"<ecaf:LocalAuthority>202</ecaf:LocalAuthority>", b""),
            "/CAFEpisode/LocalAuthority",
            "missing",
        ),
        (
            ecaf().replace(b"<ecaf:Forename>Ada</ecaf:Forename>", b""),
            "/CAFEpisode/Child/Forename",
            "missing",
        ),
        (
            ecaf().replace(
                b"<ecaf:Surname>Lovelace</ecaf:Surname>", b"<ecaf:Surname> </ecaf:Surname>"
            ),
            "/CAFEpisode/Child/Surname",
            "missing",
        ),
        (
            re.sub(rb"<ecaf:Child>.*</ecaf:Child>", b"", ecaf(), flags=re.S),
            "/CAFEpisode/Child",
            "missing",
        ),
    ],
    ids=[
        "gender",
        "status",
        "LA number",
        "GSS code for LA",
        "no LA",
        "no forename",
        "blank surname",
        "no child",
    ],
)
def test_what_an_episode_cannot_do_without_refuses_the_document(
    data: bytes, location: str, rule: str
) -> None:
    error = refused(data)
    assert (error.code, error.location) == ("schema_violation", location)
    assert rule in error.message
    assert "999" not in str(error) and "Pending" not in str(error)  # never the value


CLOSURE_CODES = {
    "RES-FAMILY": ClosureOutcome.RESOLVED_FAMILY,
    "RES-SINGLE": ClosureOutcome.RESOLVED_SINGLE_SERVICE,
    "RES-MULTI": ClosureOutcome.RESOLVED_MULTI_AGENCY,
    "RES-OTHER": ClosureOutcome.RESOLVED_OTHER,
    "CONSENT-WITHDRAWN": ClosureOutcome.CONSENT_WITHDRAWN,
    "CONSENT-OVERRIDDEN": ClosureOutcome.CONSENT_OVERRIDDEN,
    "STEPPED-UP": ClosureOutcome.STEPPED_UP,
    "MOVED-LA": ClosureOutcome.MOVED_AUTHORITY,
}


@pytest.mark.parametrize(("code", "outcome"), CLOSURE_CODES.items())
def test_closure_outcomes(code: str, outcome: ClosureOutcome) -> None:
    data = ecaf(f'<ecaf:Closure date="2025-08-13" outcome="{code}"/>', status="Closed")
    episode = one(data)
    assert episode.closure is not None and episode.closure.outcome is outcome
    assert episode.closure.closed_on == dt.date(2025, 8, 13)
    assert f'outcome="{code}"'.encode() in write(episode)


# The formats README's list, in its order: it matches the national elements' order.
ELEMENT_CODES = (
    "DEV.HEALTH.GENERAL DEV.HEALTH.PHYSICAL DEV.HEALTH.SLC DEV.EMOTIONAL DEV.BEHAVIOUR DEV.IDENTITY "
    "DEV.RELATIONSHIPS DEV.SELFCARE DEV.LEARNING.UNDERSTANDING DEV.LEARNING.PARTICIPATION "
    "DEV.LEARNING.PROGRESS DEV.LEARNING.ASPIRATIONS PAR.BASIC_CARE PAR.WARMTH PAR.GUIDANCE "
    "FAM.HISTORY FAM.WIDER FAM.HOUSING FAM.COMMUNITY"
).split()


def test_element_codes_follow_the_national_order() -> None:
    domains = "".join(
        f'<ecaf:Domain code="{d}">'
        + "".join(
            element(c, strengths=f"s{c}", needs=f"n{c}") for c in ELEMENT_CODES if c.startswith(d)
        )
        + "</ecaf:Domain>"
        for d in ("DEV", "PAR", "FAM")
    )
    data = ecaf(assessment().replace('<ecaf:Domain code="DEV"></ecaf:Domain>', domains))
    (read,) = one(data).assessments
    assert [e.element for e in read.elements] == list(Element)
    assert [e.strengths for e in read.elements] == [f"s{c}" for c in ELEMENT_CODES]
    assert meaning(write(one(data))) == meaning(data)


def test_elements_keep_their_order_and_domains() -> None:
    data = EXAMPLE["ecaf-xml-v3-101-1"]  # PAR before DEV, elements not in national order
    codes = [e.element for e in one(data).assessments[0].elements]
    assert codes[:3] == [
        Element.EMOTIONAL_WARMTH_STABILITY,
        Element.BASIC_CARE_SAFETY,
        Element.LEARNING_PARTICIPATION,
    ]


def test_consent_roles_competence_and_agencies() -> None:
    data = EXAMPLE["ecaf-xml-v3-101-0"]
    (consent,) = one(data).consents
    assert [(g.role, g.name) for g in consent.given_by] == [
        (ConsentRole.PARENT_CARER, "Zoë Costa"),
        (ConsentRole.YOUNG_PERSON, "Leah Costa"),
    ]
    assert consent.young_person_competent is True and consent.storage_agreed is True
    assert consent.consent_id == "C1" and consent.method.value == "written"
    assert [a.agency_type for a in consent.share_with] == [
        AgencyType.VOLUNTARY,
        AgencyType.EDUCATION,
        AgencyType.YOUTH_JUSTICE,
        AgencyType.SOCIAL_CARE,
    ]
    (other,) = one(EXAMPLE["ecaf-xml-v3-101-1"]).consents
    assert other.young_person_competent is False  # eCAF leaves CompetenceAssessed out when false
    assert [a.agency_type for a in other.excluded] == [AgencyType.YOUTH_JUSTICE, AgencyType.HOUSING]
    assert other.purposes == [] and other.sections is None and other.withdrawn_on is None


def test_practitioners_authorities_are_read_never_assumed() -> None:
    episode = one(EXAMPLE["ecaf-xml-v3-101-2"])
    assert [m.authority for m in episode.tac_members] == [
        "E09000007",
        "E09000025",
        "E09000025",
        "E09000028",
    ]
    assert episode.assessments[0].assessor.authority is None
    assert episode.lead_professional is not None and episode.lead_professional.authority is None
    with_one = EXAMPLE["ecaf-xml-v3-101-2"].replace(
        b"<ecaf:AgencyType>youth_justice</ecaf:AgencyType><ecaf:Telephone>020 7462",
        b"<ecaf:AgencyType>youth_justice</ecaf:AgencyType><ecaf:LocalAuthority>E09000012"
        b"</ecaf:LocalAuthority><ecaf:Telephone>020 7462",
    )
    lead = one(with_one).lead_professional
    assert lead is not None and lead.authority == "E09000012"
    assert b"E09000012</ecaf:LocalAuthority><ecaf:Telephone>020 7462" in write(one(with_one))


def test_identifiers_are_normalised() -> None:
    data = ecaf(
        child="<ecaf:Address><ecaf:Line>1 Road</ecaf:Line><ecaf:Postcode> nw16xe </ecaf:Postcode>"
        "</ecaf:Address>",
    ).replace(
        b"<ecaf:Identifiers></ecaf:Identifiers>",
        b"<ecaf:Identifiers><ecaf:NHSNumber> 943 476 5919 </ecaf:NHSNumber>"
        b"<ecaf:UPN>b801 2000 05001</ecaf:UPN><ecaf:ULN>1234567899</ecaf:ULN></ecaf:Identifiers>",
    )
    translation = translate(data)
    child = translation.episodes[0].child
    assert (child.identifiers.nhs_number, child.identifiers.upn) == ("9434765919", "B801200005001")
    assert child.identifiers.uln == "1234567899"
    assert child.address is not None and child.address.postcode == "NW1 6XE"
    rules = {f.target: (f.fate, f.rule) for f in translation.report.fields}
    assert rules["child.identifiers.nhs_number"] == (Fate.TRANSFORMED, "identifier.normalise")
    assert rules["child.address.postcode"] == (Fate.TRANSFORMED, "postcode.normalise")
    assert b"<ecaf:NHSNumber>9434765919</ecaf:NHSNumber>" in write(translation.episodes[0])


def _rejected(translation: Translation) -> dict[str, tuple[str | None, str | None]]:
    return {
        f.location: (f.rule, f.message)
        for f in translation.report.fields
        if f.fate is Fate.REJECTED
    }


def test_an_invalid_optional_value_is_rejected_and_the_rest_kept() -> None:
    data = ecaf(child="<ecaf:DateOfBirth>2999-01-01</ecaf:DateOfBirth>").replace(
        b"<ecaf:Identifiers></ecaf:Identifiers>",
        b"<ecaf:Identifiers><ecaf:NHSNumber>9434765918</ecaf:NHSNumber><ecaf:UPN>R247962919251"
        b"</ecaf:UPN></ecaf:Identifiers><ecaf:InterpreterRequired>perhaps</ecaf:InterpreterRequired>",
    )
    translation = translate(data)
    child = translation.episodes[0].child
    assert child.date_of_birth is None and child.interpreter_required is None
    assert child.identifiers.nhs_number is None and child.identifiers.upn is None
    assert child.given_names == "Ada"
    rejected = _rejected(translation)
    assert {k: v[0] for k, v in rejected.items()} == {
        "/CAFEpisode/Child/DateOfBirth": "dates.birth_in_future",
        "/CAFEpisode/Child/Identifiers/NHSNumber": "nhs_number.checksum",
        "/CAFEpisode/Child/Identifiers/UPN": "upn.checksum",
        "/CAFEpisode/Child/InterpreterRequired": "boolean.format",
    }
    assert sorted(w.rule for w in translation.warnings) == sorted(
        str(v[0]) for v in rejected.values()
    )
    said = " ".join(str(w) for w in translation.warnings) + " ".join(
        str(v) for v in rejected.values()
    )
    for value in ("2999", "9434765918", "R247962919251", "perhaps"):
        assert value not in said


def test_an_entry_that_cannot_be_used_is_rejected_whole_and_alone() -> None:
    data = ecaf(
        '<ecaf:Review date="2025-08-25" tacHeld="true"><ecaf:Progress>Good</ecaf:Progress></ecaf:Review>',
        '<ecaf:Review date="2025-13-01" tacHeld="true"><ecaf:Progress>Bad</ecaf:Progress></ecaf:Review>',
        '<ecaf:Review date="2025-11-23" tacHeld="no"><ecaf:Progress>Bad</ecaf:Progress></ecaf:Review>',
        '<ecaf:Review date="2026-01-02" tacHeld="false"><ecaf:Progress>Fine</ecaf:Progress></ecaf:Review>',
    )
    translation = translate(data)
    assert [r.progress for r in translation.episodes[0].reviews] == ["Good", "Fine"]
    rejected = _rejected(translation)
    assert {k: v[0] for k, v in rejected.items()} == {
        "/CAFEpisode/Review[2]/@date": "date.format",
        "/CAFEpisode/Review[2]/@tacHeld": "ecaf.item_rejected",
        "/CAFEpisode/Review[2]/Progress": "ecaf.item_rejected",
        "/CAFEpisode/Review[3]/@date": "ecaf.item_rejected",
        "/CAFEpisode/Review[3]/@tacHeld": "boolean.format",
        "/CAFEpisode/Review[3]/Progress": "ecaf.item_rejected",
    }
    fourth = [
        f for f in translation.report.fields if f.location.startswith("/CAFEpisode/Review[4]")
    ]
    assert {f.target for f in fourth} == {
        "reviews[1].held_on",
        "reviews[1].tac_meeting_held",
        "reviews[1].progress",
    }
    assert [w.path for w in translation.warnings] == [("reviews",), ("reviews",)]


def test_an_entry_failing_a_national_rule_is_rejected_alone() -> None:
    late = assessment(element("DEV.IDENTITY")).replace(
        'started="2025-05-14"', 'started="2025-05-14" completed="2025-05-01"'
    )
    translation = translate(ecaf(late, assessment(element("DEV.EMOTIONAL"))))
    (kept,) = translation.episodes[0].assessments
    assert kept.elements[0].element is Element.EMOTIONAL_SOCIAL
    rejected = _rejected(translation)
    assert rejected["/CAFEpisode/Assessment[1]/@completed"][0] == "dates.completed_before_started"
    assert all(k.startswith("/CAFEpisode/Assessment[1]") for k in rejected)


def test_an_unknown_element_code_rejects_that_element_only() -> None:
    data = ecaf(
        assessment(element("DEV.IDENTITY"), element("DEV.SPELLING"), element("DEV.BEHAVIOUR"))
    )
    translation = translate(data)
    elements = translation.episodes[0].assessments[0].elements
    assert [e.element for e in elements] == [Element.IDENTITY, Element.BEHAVIOURAL]
    assert _rejected(translation)["/CAFEpisode/Assessment[1]/Domain[1]/Element[2]/@code"][0] == (
        "element.unknown_code"
    )


def test_a_domain_that_does_not_match_its_elements_is_reported() -> None:
    translation = translate(ecaf(assessment(element("PAR.WARMTH"), domain="DEV")))
    assert (
        translation.episodes[0].assessments[0].elements[0].element
        is Element.EMOTIONAL_WARMTH_STABILITY
    )
    assert _rejected(translation) == {
        "/CAFEpisode/Assessment[1]/Domain[1]/@code": (
            "ecaf.domain_mismatch",
            "the domain code does not match its elements' codes; each element's own code is used",
        )
    }


@pytest.mark.parametrize(
    "inside",
    [
        "<ecaf:ValidUntil>2025-12-31</ecaf:ValidUntil>",  # would narrow it
        '<x:Purposes xmlns:x="urn:vendor"><x:Purpose>health only</x:Purpose></x:Purposes>',
        "for health only",  # text standing in the consent itself
    ],
)
def test_a_consent_holding_anything_unknown_is_not_imported(inside: str) -> None:
    translation = translate(ecaf(CONSENT.format(inside)))
    episode = translation.episodes[0]
    assert episode.consents == []
    rejected = _rejected(translation)
    assert rejected and all(k.startswith("/CAFEpisode/Consent[1]") for k in rejected)
    assert any(rule == "ecaf.consent_not_understood" for rule, _ in rejected.values())
    # Kept for people to read, whole, but never written back: it would come back live, beyond the
    # reach of any withdrawal made through the exchange.
    [kept] = kept_elements(episode)
    assert kept["rejected"] is True and "<ecaf:Consent" in kept["xml"]
    assert kept["values"]["Consent/@id"] == "C1"
    assert b"<ecaf:Consent" not in write(episode)


# Rejected content is kept and written back where it was: nothing the borough wrote is lost.
REJECTED_VALUES = {
    "a bad date of birth": (b"<ecaf:DateOfBirth>2009-10-03", b"<ecaf:DateOfBirth>03/10/2009"),
    "a bad NHS number": (b"<ecaf:NHSNumber>0778857255", b"<ecaf:NHSNumber>0778857256"),
    "a review with a bad date": (
        b'<ecaf:Review date="2025-08-25"',
        b'<ecaf:Review date="25/08/2025"',
    ),
    "a plan action's bad date": (b"<ecaf:ByWhen>2025-08-17", b"<ecaf:ByWhen>17/08/2025"),
    "a parent without parental responsibility": (
        b'<ecaf:ParentCarer parentalResponsibility="true">',
        b"<ecaf:ParentCarer>",
    ),
}


@pytest.mark.parametrize("change", REJECTED_VALUES.values(), ids=list(REJECTED_VALUES))
def test_rejected_content_is_kept_and_written_back(change: tuple[bytes, bytes]) -> None:
    old, new = change
    document = BASE.replace(old, new, 1)
    assert document != BASE
    translation = translate(document)
    assert any(f.fate is Fate.REJECTED for f in translation.report.fields)
    episode = Episode.model_validate_json(translation.episodes[0].model_dump_json())
    assert meaning(write(episode)) == meaning(document)


def test_a_rejected_value_goes_back_only_where_the_episode_has_none() -> None:
    """Someone may have corrected it since: the national value wins, and is not doubled."""
    episode = one(BASE.replace(b"<ecaf:NHSNumber>0778857255", b"<ecaf:NHSNumber>0778857256", 1))
    assert episode.child.identifiers.nhs_number is None
    corrected = episode.model_copy(
        update={
            "child": episode.child.model_copy(
                update={
                    "identifiers": episode.child.identifiers.model_copy(
                        update={"nhs_number": "0778857255"}
                    )
                }
            )
        }
    )
    said = dict(meaning(write(corrected)))
    assert said["/CAFEpisode/Child[1]/Identifiers[1]/NHSNumber[1]"] == "0778857255"
    assert "/CAFEpisode/Child[1]/Identifiers[1]/NHSNumber[2]" not in said


def test_rejected_elements_and_lines_are_kept_but_not_put_back_by_position() -> None:
    """They belong with their neighbours, which may have changed since: an element into another
    domain, an old address line into a new address. They stay in extensions, whole."""
    two_domains = assessment(element("DEV.SLEEP", needs="Bedtimes")).replace(
        "</ecaf:Assessment>", f'<ecaf:Domain code="PAR">{element("PAR.WARMTH")}</ecaf:Domain>'
    )
    episode = one(ecaf(two_domains + "</ecaf:Assessment>"))
    [kept] = kept_elements(episode)  # the domain, whole: not its elements one by one
    assert kept["rejected"] is True and "DEV.SLEEP" in kept["xml"]
    said = dict(meaning(write(episode)))
    assert "Bedtimes" not in said.values()
    assert said["/CAFEpisode/Assessment[1]/Domain[1]/@code"] == "PAR"

    moved = BASE.replace(b"<ecaf:Line>London</ecaf:Line>", b"<ecaf:Line>London<x/></ecaf:Line>", 1)
    assert moved != BASE
    episode = one(moved)
    address = episode.child.address
    assert address is not None
    new_home = address.model_copy(update={"lines": ["99 New Street"], "postcode": "N1 9GU"})
    episode = episode.model_copy(
        update={"child": episode.child.model_copy(update={"address": new_home})}
    )
    lines = [v for k, v in meaning(write(episode)) if "/Address[1]/Line" in k]
    assert lines == ["99 New Street"]


@pytest.mark.parametrize(
    "change",
    [
        ('<ecaf:Agency type="police"/>', '<ecaf:Agency type="police" name="Met"/>'),
        ('<ecaf:Agency type="police"/>', '<ecaf:Agency type="the police"/>'),
        ('<ecaf:Agency type="health"/>', '<ecaf:Agency type="hospital"/>'),
        ('method="written"', 'method="signed"'),
        ('role="parent"', 'role="aunt"'),
        ("<ecaf:Storage>true</ecaf:Storage>", ""),
        ("<ecaf:Storage>true</ecaf:Storage>", "<ecaf:Storage>true</ecaf:Storage>" * 2),
    ],
    ids=["qualified agency", "excluded type", "agreed type", "method", "role", "storage", "repeat"],
)
def test_a_consent_is_all_or_nothing(change: tuple[str, str]) -> None:
    translation = translate(ecaf(CONSENT.format("").replace(*change)))
    assert translation.episodes[0].consents == []
    assert _rejected(translation)
    assert translate(ecaf(CONSENT.format(""))).episodes[0].consents  # unchanged, it is read


def test_a_closure_needs_a_closed_status() -> None:
    translation = translate(ecaf('<ecaf:Closure date="2025-08-13" outcome="RES-FAMILY"/>'))
    assert translation.episodes[0].closure is None
    assert {v[0] for v in _rejected(translation).values()} == {"state.closure_without_closed_state"}


def _zoned(zone: str) -> bytes:
    """Every kind of eCAF date, each written with the time zone `zone` (as xs:date allows)."""
    return ecaf(
        assessment(element("DEV.IDENTITY")).replace(
            'started="2025-05-14"', f'started="2025-05-14{zone}" completed="2025-05-27{zone}"'
        ),
        CONSENT.format("").replace('date="2025-05-27"', f'date="2025-05-27{zone}"'),
        "<ecaf:DeliveryPlan><ecaf:Action><ecaf:Need>Sleep</ecaf:Need><ecaf:Action>Routine"
        "</ecaf:Action><ecaf:Responsible>Mum</ecaf:Responsible>"
        f"<ecaf:ByWhen>2025-08-17{zone}</ecaf:ByWhen></ecaf:Action></ecaf:DeliveryPlan>",
        f'<ecaf:Review date="2025-08-25{zone}" tacHeld="true"/>',
        f'<ecaf:Closure date="2025-09-13{zone}" outcome="RES-SINGLE"/>',
        status="Closed",
        child=f"<ecaf:DateOfBirth>2009-10-03{zone}</ecaf:DateOfBirth>",
    )


_ZONED_DATES = {
    "/CAFEpisode/Child/DateOfBirth": "child.date_of_birth",
    "/CAFEpisode/Assessment[1]/@started": "assessments[0].started_on",
    "/CAFEpisode/Assessment[1]/@completed": "assessments[0].completed_on",
    "/CAFEpisode/Consent[1]/@date": "consents[0].given_on",
    "/CAFEpisode/DeliveryPlan/Action[1]/ByWhen": "delivery_plan[0].due_on",
    "/CAFEpisode/Review[1]/@date": "reviews[0].held_on",
    "/CAFEpisode/Closure/@date": "closure.closed_on",
}


@pytest.mark.parametrize("zone", ["Z", "+01:00", "-05:30", "+14:00", "-00:00", "+13:59"])
def test_a_date_with_a_time_zone_keeps_its_calendar_date(zone: str) -> None:
    """xs:date allows a time zone: the date is read (with all it belongs to), the zone dropped."""
    translation = translate(_zoned(zone))
    episode = translation.episodes[0]
    assert translation.warnings == []
    assert episode.child.date_of_birth == dt.date(2009, 10, 3)
    (assessed,) = episode.assessments
    assert (assessed.started_on, assessed.completed_on) == (
        dt.date(2025, 5, 14),
        dt.date(2025, 5, 27),
    )
    assert [e.element for e in assessed.elements] == [Element.IDENTITY]
    assert [c.given_on for c in episode.consents] == [dt.date(2025, 5, 27)]
    assert [a.due_on for a in episode.delivery_plan] == [dt.date(2025, 8, 17)]
    assert [r.held_on for r in episode.reviews] == [dt.date(2025, 8, 25)]
    assert episode.closure is not None and episode.closure.closed_on == dt.date(2025, 9, 13)
    assert kept_elements(episode) == []  # nothing was kept aside for want of its date
    zoned = {
        f.location: f.target
        for f in translation.report.fields
        if (f.fate, f.rule) == (Fate.TRANSFORMED, "date.timezone_dropped")
    }
    assert zoned == _ZONED_DATES
    assert all(f.fate is not Fate.REJECTED for f in translation.report.fields)
    # Written back without the zone (the national date has none), and read back alike.
    written = write(episode)
    assert b'started="2025-05-14" completed="2025-05-27"' in written
    assert b"<ecaf:DateOfBirth>2009-10-03</ecaf:DateOfBirth>" in written
    assert comparable(one(written)) == comparable(episode)


@pytest.mark.parametrize(
    "date",
    [
        "2025-08-25+15:00",
        "2025-08-25+14:30",
        "2025-08-25+1:00",
        "2025-08-25+0100",
        "2025-08-25z",
        "2025-08-25+01:60",
        "2025-08-25 Z",
        "2025-02-30Z",
        "2025-08-25T10:00Z",
    ],
)
def test_a_date_with_a_time_zone_xs_date_does_not_allow_is_refused(date: str) -> None:
    translation = translate(ecaf(f'<ecaf:Review date="{date}" tacHeld="true"/>'))
    assert translation.episodes[0].reviews == []
    assert _rejected(translation)["/CAFEpisode/Review[1]/@date"][0] == "date.format"


def test_a_birth_date_with_a_time_zone_is_still_checked() -> None:
    data = ecaf(child="<ecaf:DateOfBirth>2999-01-01Z</ecaf:DateOfBirth>")
    translation = translate(data)
    assert translation.episodes[0].child.date_of_birth is None
    assert _rejected(translation)["/CAFEpisode/Child/DateOfBirth"][0] == "dates.birth_in_future"


def test_a_repeated_value_is_reported_and_the_first_used() -> None:
    data = ecaf().replace(
        b"<ecaf:Gender>F</ecaf:Gender>", b"<ecaf:Gender>F</ecaf:Gender><ecaf:Gender>M</ecaf:Gender>"
    )
    translation = translate(data)
    assert translation.episodes[0].child.gender is Gender.FEMALE
    assert _rejected(translation) == {
        "/CAFEpisode/Child/Gender": ("ecaf.repeated", "given more than once; the first is used")
    }


def test_an_empty_optional_element_is_absent() -> None:
    data = ecaf(
        '<ecaf:ParentsCarers><ecaf:ParentCarer parentalResponsibility="1"><ecaf:Name>Bo</ecaf:Name>'
        "<ecaf:Relationship>Aunt</ecaf:Relationship><ecaf:Telephone/></ecaf:ParentCarer></ecaf:ParentsCarers>"
    )
    translation = translate(data)
    (parent,) = translation.episodes[0].parents_carers
    assert parent.telephone is None and parent.parental_responsibility is True
    (empty,) = [f for f in translation.report.fields if f.location.endswith("/Telephone")]
    assert (empty.fate, empty.rule) == (Fate.TRANSFORMED, "ecaf.empty_is_absent")


def test_unknown_elements_and_attributes_are_kept_and_written_back_in_place() -> None:
    data = (
        EXAMPLE["ecaf-xml-v3-101-2"]
        .replace(
            b"<ecaf:Gender>M</ecaf:Gender>",
            b'<ecaf:Gender>M</ecaf:Gender><ecaf:Pronouns by="self">he</ecaf:Pronouns>',
        )
        .replace(
            b"<ecaf:Name>Noah Nguyen</ecaf:Name>",
            b'<ecaf:Name>Noah Nguyen</ecaf:Name><v:Badge xmlns:v="urn:vendor">42</v:Badge>',
        )
        .replace(b'<ecaf:Review date="2026-02-12"', b'<ecaf:Review seen="yes" date="2026-02-12"')
        .replace(b"<ecaf:Child>", b'<ecaf:Child xml:lang="en">')
        .replace(b"<ecaf:EpisodeRef>", b"<ecaf:Folder>7</ecaf:Folder>\n<ecaf:EpisodeRef>")
    )
    translation = translate(data)
    episode = translation.episodes[0]
    assert comparable(episode) | {"extensions": {}} == comparable(
        one(EXAMPLE["ecaf-xml-v3-101-2"])
    ) | {"extensions": {}}
    kept = episode.extensions[FORMAT]
    assert [(e["parent"], e["after"]) for e in kept_elements(episode)] == [
        ("/CAFEpisode", None),
        ("/CAFEpisode/Child", "Gender"),
        ("/CAFEpisode/TeamAroundChild/Member[2]", "Name"),
    ]
    assert kept["attributes"] == [
        {
            "element": "/CAFEpisode/Child",
            "name": "{http://www.w3.org/XML/1998/namespace}lang",
            "value": "en",
        },
        {"element": "/CAFEpisode/Review[2]", "name": "seen", "value": "yes"},
    ]
    extended = [f.location for f in translation.report.fields if f.fate is Fate.EXTENDED]
    assert extended == [
        "/CAFEpisode/@schemaVersion",
        "/CAFEpisode/Folder[1]",
        "/CAFEpisode/Child/@lang",
        "/CAFEpisode/Child/Pronouns[1]",
        "/CAFEpisode/TeamAroundChild/Member[2]/Badge[1]",
        "/CAFEpisode/Review[2]/@seen",
    ]
    assert meaning(write(episode)) == meaning(data)


def test_stray_text_is_kept_and_written_back_in_place() -> None:
    """Mixed content eCAF does not write: text directly in a container, before or after its
    elements (split by a comment, it is one text). Kept and reported, never dropped silently."""
    base = EXAMPLE["ecaf-xml-v3-101-0"]
    data = (
        base.replace(b"<ecaf:Child>", b"<ecaf:Child>stray <!-- c -->note", 1)
        .replace(b"</ecaf:Forename>", b"</ecaf:Forename>tail text", 1)
        .replace(b'outcome="RES-SINGLE"/>', b'outcome="RES-SINGLE">closed early</ecaf:Closure>', 1)
        .replace(b"</ecaf:CAFEpisode>", b"last words</ecaf:CAFEpisode>", 1)
    )
    translation = translate(data)
    episode = translation.episodes[0]
    assert comparable(episode) == comparable(one(base)) | {
        "extensions": comparable(episode)["extensions"]
    }
    assert episode.extensions[FORMAT]["texts"] == [
        {"parent": "/CAFEpisode/Child", "after": None, "text": "stray note\n"},
        {"parent": "/CAFEpisode/Child", "after": "Forename", "text": "tail text\n"},
        {"parent": "/CAFEpisode/Closure", "after": None, "text": "closed early"},
        {"parent": "/CAFEpisode", "after": "Closure", "text": "\nlast words"},
    ]
    stray = [
        f.location
        for f in translation.report.fields
        if (f.fate, f.rule, f.target) == (Fate.EXTENDED, "ecaf.stray_text", f"extensions.{FORMAT}")
    ]
    assert stray == [
        "/CAFEpisode/Child/text()",
        "/CAFEpisode/Child/text()",
        "/CAFEpisode/Closure/text()",
        "/CAFEpisode/text()",
    ]
    assert translation.warnings == []
    written = write(episode)
    root = parse_xml(written)
    child, closure = root.find(f"{{{NS}}}Child"), root.find(f"{{{NS}}}Closure")
    assert child is not None and closure is not None
    assert child.text == "stray note\n" and child[0].tail == "tail text\n"
    assert (closure.text, closure.tail) == ("closed early", "\nlast words")
    assert comparable(one(written)) == comparable(episode)
    # Through national JSON and back, alike.
    assert write(Episode.model_validate_json(episode.model_dump_json())) == written


def test_kept_text_never_goes_into_a_value_or_a_consent() -> None:
    episode = one(ecaf(CONSENT.format(""), child="<ecaf:DateOfBirth>2009-10-03</ecaf:DateOfBirth>"))
    texts = [
        {"parent": "/CAFEpisode/Child/Forename", "after": None, "text": "Lovelace"},
        {"parent": "/CAFEpisode/Consent[1]", "after": None, "text": "health only"},
        {"parent": "/CAFEpisode/Child", "after": "Forename", "text": "<b>not markup</b>"},
    ]
    written = write(episode.model_copy(update={"extensions": {FORMAT: {"texts": texts}}}))
    again = one(written)
    assert again.child.given_names == "Ada" and len(again.consents) == 1
    assert b"health only" not in written
    assert b"&lt;b&gt;not markup&lt;/b&gt;" in written
    assert again.extensions[FORMAT]["texts"] == [texts[2]]  # in place of the layout there


def test_kept_content_survives_the_national_json_trip() -> None:
    episode = one(EXAMPLE["ecaf-xml-v3-102-0"])
    again = Episode.model_validate_json(episode.model_dump_json())
    assert write(again) == write(episode)


@pytest.mark.parametrize(
    "data",
    [
        b'<?xml version="1.0"?><other xmlns="urn:x-caf:ecaf:3"/>',
        b"<CAFEpisode/>",
        b'<e:CAFEpisode xmlns:e="urn:x-caf:ecaf:2"/>',
        EXAMPLE["ecaf-xml-v3-101-0"].replace(b"urn:x-caf:ecaf:3", b"urn:x-csc:ics:closure:1"),
    ],
    ids=["other root", "no namespace", "version 2", "other namespace"],
)
def test_other_documents_are_unsupported(data: bytes) -> None:
    assert refused(data).code == "unsupported_format"


def test_not_well_formed_is_a_schema_violation_without_content() -> None:
    error = refused(EXAMPLE["ecaf-xml-v3-101-0"].replace(b"</ecaf:Surname>", b"</ecaf:Surnam>"))
    assert error.code == "schema_violation" and error.location.startswith("line ")
    assert "Costa" not in str(error) and "Surnam" not in str(error)


def test_received_at_must_say_its_time_zone() -> None:
    with pytest.raises(ValueError, match="timezone"):
        ADAPTER.to_national(BASE, received_at=dt.datetime(2026, 1, 1))  # noqa: DTZ001


# -- writing eCAF ---------------------------------------------------------------------------------


def national(change: Callable[[dict[str, Any]], None] | None = None) -> Episode:
    """The 101-0 example as a national episode, changed by `change` (and validated again)."""
    data = one(BASE).model_dump(mode="json")
    if change is not None:
        change(data)
    return Episode.model_validate(data)


def test_writes_exactly_one_episode_per_document() -> None:
    for episodes_ in ([], [national(), national()]):
        with pytest.raises(AdapterError) as caught:
            ADAPTER.from_national(episodes_)
        assert caught.value.code == "unsupported_format"


def test_an_authority_without_a_dfe_number_cannot_be_written() -> None:
    def bolton(d: dict[str, Any]) -> None:
        d["home_authority"] = "E08000001"

    with pytest.raises(AdapterError) as caught:
        write(national(bolton))
    assert (caught.value.code, caught.value.location) == ("unsupported_format", "/home_authority")


@pytest.mark.parametrize(
    ("gender", "letter"), [("indeterminate", b"U"), ("not_stated", b"U"), ("female", b"F")]
)
def test_genders_ecaf_has_no_letter_for_are_written_unknown(gender: str, letter: bytes) -> None:
    def change(d: dict[str, Any]) -> None:
        d["child"]["gender"] = gender

    assert b"<ecaf:Gender>" + letter + b"</ecaf:Gender>" in write(national(change))


@pytest.mark.parametrize(
    ("state", "word", "closure"),
    [
        ("potential", b"Open", False),
        ("open", b"Open", False),
        ("transferred", b"Closed", False),
        ("archived", b"Closed", True),
    ],
)
def test_states_ecaf_has_no_word_for(state: str, word: bytes, closure: bool) -> None:
    def change(d: dict[str, Any]) -> None:
        d["state"] = state
        if not closure:
            d["closure"] = None

    written = write(national(change))
    assert b"<ecaf:Status>" + word + b"</ecaf:Status>" in written
    assert (b"<ecaf:Closure " in written) is closure


def test_an_episode_from_elsewhere_is_written_as_ecaf_writes_it() -> None:
    def elsewhere(d: dict[str, Any]) -> None:
        d["extensions"] = {}
        d["local_ref"] = None
        d["child"]["address"] = {"lines": ["1 Mare Street"], "town": "London", "postcode": "E8 1DY"}
        d["lead_professional"]["role"] = "Teacher"  # eCAF's LeadProfessional has no Role
        d["lead_professional"]["authority"] = "E09000012"
        d["tac_members"][0]["telephone"] = "020 7000 0000"  # nor a Member a Telephone

    episode = national(elsewhere)
    written = write(episode)
    assert written.startswith(
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<ecaf:CAFEpisode xmlns:ecaf="urn:x-caf:ecaf:3" schemaVersion="3.1">\n'
        b"<ecaf:EpisodeRef>" + str(episode.episode_id).encode()
    )
    assert (
        b"<ecaf:Address><ecaf:Line>1 Mare Street</ecaf:Line><ecaf:Line>London</ecaf:Line>"
        b"<ecaf:Postcode>E8 1DY</ecaf:Postcode></ecaf:Address>" in written
    )
    assert b"Teacher" not in written and b"020 7000 0000" not in written
    assert (
        b"<ecaf:AgencyType>social_care</ecaf:AgencyType><ecaf:LocalAuthority>E09000012" in written
    )
    assert ADAPTER.detect(written)
    again = one(written)
    assert again.child.address is not None and again.child.address.lines == [
        "1 Mare Street",
        "London",
    ]
    assert again.local_ref == str(episode.episode_id)


def _consent(change: Callable[[dict[str, Any]], None]) -> bytes:
    def apply(d: dict[str, Any]) -> None:
        change(d["consents"][0])

    return write(national(apply))


@pytest.mark.parametrize(
    "change",
    [
        {"withdrawn_on": "2025-06-01"},  # eCAF would take it as standing
        {"valid_until": "2026-12-31"},  # ... as open-ended
        {"purposes": ["education support"]},  # ... as for any purpose
        {"sections": ["child", "assessments"]},  # ... as for every section
        {"excluded": [{"name": "Met Police Safer Schools"}]},  # an exclusion eCAF cannot name
    ],
    ids=["withdrawn", "expires", "purposes", "sections", "exclusion by name"],
)
def test_a_consent_ecaf_would_read_as_broader_is_not_written(change: dict[str, Any]) -> None:
    written = _consent(lambda c: c.update(change))
    assert b"<ecaf:Consent" not in written
    assert one(written).consents == []


def test_a_consent_ecaf_can_say_is_written_and_agencies_never_broadened() -> None:
    def change(c: dict[str, Any]) -> None:
        c["sections"] = [s.value for s in Section]
        c["share_with"] = [
            {"agency_type": "health", "name": "Homerton"},  # only Homerton: eCAF cannot say that
            {"agency_type": "education"},
            {"name": "Family Action"},
        ]
        c["excluded"] = [
            {"agency_type": "police", "name": "Met"}
        ]  # excluding all police is narrower

    written = _consent(change)
    assert (
        b'<ecaf:SharingAgreedWith><ecaf:Agency type="education"/></ecaf:SharingAgreedWith>\n'
        b'<ecaf:SharingExcluded><ecaf:Agency type="police"/></ecaf:SharingExcluded>' in written
    )
    (consent,) = one(written).consents
    assert [a.agency_type for a in consent.share_with] == [AgencyType.EDUCATION]


def test_kept_content_cannot_say_what_known_elements_say() -> None:
    ns = f'xmlns:ecaf="{NS}"'
    consent = CONSENT.format("").replace("<ecaf:Consent ", f"<ecaf:Consent {ns} ")

    def hostile(d: dict[str, Any]) -> None:
        d["extensions"] = {
            FORMAT: {
                "elements": [
                    {"parent": "/CAFEpisode", "after": "Closure", "xml": consent},
                    {
                        "parent": "/CAFEpisode/Child",
                        "after": "Gender",
                        "xml": f"<ecaf:Forename {ns}>Eve</ecaf:Forename>",
                    },
                    {"parent": "/CAFEpisode/Consent[1]", "after": None, "xml": f"<ecaf:N {ns}/>"},
                    {
                        "parent": "/CAFEpisode/Child/Forename",
                        "after": None,
                        "xml": f"<ecaf:F {ns}/>",
                    },
                    {
                        "parent": "/CAFEpisode",
                        "after": None,
                        "xml": f'<?xml version="1.0"?><ecaf:P {ns}/>',
                    },
                    {"parent": "/CAFEpisode", "after": None, "xml": "not XML at all"},
                    {"parent": "/Elsewhere", "after": None, "xml": f"<ecaf:Q {ns}/>"},
                    {
                        "parent": "/CAFEpisode",
                        "after": "Closure",
                        "xml": f"<ecaf:Ok {ns}>kept</ecaf:Ok>",
                    },
                ],
                "attributes": [
                    {"element": "/CAFEpisode/Review[1]", "name": "tacHeld", "value": "false"},
                    {"element": "/CAFEpisode/Consent[1]", "name": "scope", "value": "all"},
                    {"element": "/CAFEpisode/Child", "name": "not a name", "value": "x"},
                    {"element": "/CAFEpisode/Child", "name": "note", "value": "kept"},
                ],
            }
        }

    written = write(national(hostile))
    assert written.count(b"<ecaf:Consent ") == 1 and b"Eve" not in written
    assert b"scope" not in written and b"<ecaf:N/>" not in written and b"<ecaf:P/>" not in written
    assert b"<ecaf:F/>" not in written
    assert b'<ecaf:Child note="kept">' in written
    assert written.endswith(b"<ecaf:Ok>kept</ecaf:Ok>\n</ecaf:CAFEpisode>")
    again = one(written)
    assert comparable(again) | {"extensions": {}} == comparable(national()) | {"extensions": {}}


def test_text_xml_cannot_carry_is_refused() -> None:
    def control(d: dict[str, Any]) -> None:
        d["child"]["known_as"] = None
        d["parents_carers"][0]["name"] = "Zoë\x01Costa"

    with pytest.raises(AdapterError) as caught:
        write(national(control))
    assert caught.value.code == "unsupported_format" and "Zo" not in str(caught.value)


# -- any national episode, through eCAF -----------------------------------------------------------

_ALL_SECTIONS = {s.value for s in Section}


def _writable(c: dict[str, Any]) -> bool:
    return (
        c["withdrawn_on"] is None
        and c["valid_until"] is None
        and not c["purposes"]
        and (c["sections"] is None or set(c["sections"]) == _ALL_SECTIONS)
        and all(a["agency_type"] is not None for a in c["excluded"])
    )


def _short(value: str | None) -> str | None:
    return None if value is None else value.strip() or None


def _practitioner(p: dict[str, Any], role: bool = True, contact: bool = True) -> dict[str, Any]:
    return {
        "name": p["name"].strip(),
        "role": _short(p["role"]) if role else None,
        "organisation": p["organisation"].strip(),
        "agency_type": p["agency_type"],
        "authority": p["authority"],
        "telephone": _short(p["telephone"]) if contact else None,
        "email": _short(p["email"]) if contact else None,
    }


def through_ecaf(episode: Episode) -> dict[str, Any]:
    """What an episode reads as after eCAF: the losses the writer's docstring lists, and names read
    without the white space around them (narrative text is kept exactly)."""
    d = comparable(episode)
    kept = d["extensions"].get(FORMAT, {})
    version = kept.get("schemaVersion")
    d["extensions"] = {FORMAT: {"schemaVersion": version if isinstance(version, str) else "3.1"}}
    d["local_ref"] = (episode.local_ref or str(episode.episode_id)).strip()
    d["state"] = {"potential": "open", "transferred": "closed", "archived": "closed"}.get(
        d["state"], d["state"]
    )
    d["source"] = {"format": FORMAT, "step_down": None}
    d["family_ref"], d["service_requests"] = None, []
    child = d["child"]
    for key in ("known_as", "expected_date_of_delivery", "first_language", "religion", "school"):
        child[key] = None
    child["disability"], child["previous_names"] = None, []
    child["given_names"], child["family_name"] = (
        child["given_names"].strip(),
        child["family_name"].strip(),
    )
    child["gender"] = {"indeterminate": "unknown", "not_stated": "unknown"}.get(
        child["gender"], child["gender"]
    )
    child["identifiers"]["local_id"] = None
    if child["address"] is not None:
        lines = [*child["address"]["lines"], child["address"]["town"]]
        child["address"]["lines"] = [line.strip() for line in lines if line and line.strip()]
        child["address"]["town"] = None
    d["parents_carers"] = [
        {
            "name": p["name"].strip(),
            "relationship": p["relationship"].strip(),
            "parental_responsibility": p["parental_responsibility"],
            "telephone": _short(p["telephone"]),
            "email": None,
            "address": None,
        }
        for p in d["parents_carers"]
    ]
    for a in d["assessments"]:
        a["assessor"] = _practitioner(a["assessor"])
        a["people_present"] = []
        a["conclusions"] = a["child_comments"] = a["parent_comments"] = None
        for e in a["elements"]:
            e["applies_to"] = None
            e["strengths"], e["needs"] = e["strengths"] or None, e["needs"] or None
    d["consents"] = [
        c
        | {
            "consent_id": c["consent_id"].strip(),
            "given_by": [g | {"name": g["name"].strip()} for g in c["given_by"]],
            "young_person_competent": bool(c["young_person_competent"]),
            "sections": None,
            "share_with": [
                a for a in c["share_with"] if a["name"] is None and a["authority"] is None
            ],
            "excluded": [
                {"agency_type": a["agency_type"], "name": None, "authority": None}
                for a in c["excluded"]
            ],
        }
        for c in d["consents"]
        if _writable(c)
    ]
    if d["lead_professional"] is not None:
        d["lead_professional"] = _practitioner(d["lead_professional"], role=False)
    d["tac_members"] = [_practitioner(p, contact=False) for p in d["tac_members"]]
    for action in d["delivery_plan"]:
        action["responsible"] = action["responsible"].strip()
        action["desired_outcome"] = None
    for review in d["reviews"]:
        review["people_present"], review["next_steps"], review["next_review_on"] = [], None, None
        review["progress"] = review["progress"] or None
    if d["closure"] is not None:
        d["closure"]["notes"] = None
    return d


def _names_survive(episode: Episode) -> bool:
    """Required names that are nothing but white space cannot be read back (eCAF trims names)."""
    names = [episode.child.given_names, episode.child.family_name]
    names += [n for p in episode.parents_carers for n in (p.name, p.relationship)]
    names += [n for a in episode.assessments for n in (a.assessor.name, a.assessor.organisation)]
    names += [n for p in episode.tac_members for n in (p.name, p.organisation)]
    names += [a.responsible for a in episode.delivery_plan]
    names += [g.name for c in episode.consents for g in c.given_by] + [
        c.consent_id for c in episode.consents
    ]
    lead = episode.lead_professional
    names += [lead.name, lead.organisation] if lead is not None else []
    return all(n.strip() for n in names) and not (episode.local_ref or "x").isspace()


@given(episodes())
@settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_national_episode_reads_back_as_ecaf_can_say_it(episode: Episode) -> None:
    assume(_names_survive(episode))
    kept = episode.extensions.get(FORMAT, {})
    assume("elements" not in kept and "attributes" not in kept)
    written = write(episode)
    assert comparable(one(written)) == through_ecaf(episode)
    settled = write(one(written))  # names are trimmed once; after that, writing is stable
    assert write(one(settled)) == settled


# -- hostile XML ----------------------------------------------------------------------------------
# Each attack comes inside an otherwise good eCAF document, so a refusal is the attack's doing. The
# traps catch any read: a named pipe (opening it to read is seen, and would block for ever) and a
# listening socket (a connection is seen). These tests go through `adapters._safe.parse_xml`.

SECRET = "CAFX-SECRET-7f3a"
SLOW = 5.0  # seconds: generous for a loaded CI machine; each attack takes milliseconds


@dataclass
class Traps:
    fifo: Path
    server: socket.socket
    secret_file: Path

    @property
    def fifo_url(self) -> str:
        return self.fifo.as_uri()

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.server.getsockname()[1]}/x.dtd"


@pytest.fixture
def traps(tmp_path: Path) -> Iterator[Traps]:
    fifo = tmp_path / "pipe.dtd"
    os.mkfifo(fifo)
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.setblocking(False)
    try:
        yield Traps(fifo, server, secret)
    finally:
        server.close()


@dataclass
class Outcome:
    value: object  # what the call returned, or the exception it raised
    seconds: float
    opened: bool  # the named pipe was opened for reading
    connected: bool  # someone connected to the listening socket


def watched(call: Callable[[], object], traps: Traps, limit: float = 20.0) -> Outcome:
    """Run `call` in a thread, watching the traps. A reader opening the pipe is fed a DTD holding
    SECRET, then end of file, so nothing hangs and a leak would show."""
    box: dict[str, object] = {}

    def work() -> None:
        try:
            box["value"] = call()
        except Exception as exc:  # noqa: BLE001 - the outcome is examined by the test
            box["value"] = exc

    worker = threading.Thread(target=work, daemon=True)
    start = time.monotonic()
    worker.start()
    opened = False
    while worker.is_alive() and time.monotonic() - start < limit:
        try:
            fd = os.open(traps.fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            assert exc.errno == errno.ENXIO  # nobody has the pipe open to read
            worker.join(0.002)
            continue
        opened = True
        try:
            os.write(fd, f'<!ENTITY leak "{SECRET}">'.encode())
        finally:
            os.close(fd)
    worker.join(max(0.0, limit - (time.monotonic() - start)))
    seconds = time.monotonic() - start
    assert not worker.is_alive(), f"still running after {limit} s"
    try:
        traps.server.accept()[0].close()
        connected = True
    except BlockingIOError:
        connected = False
    return Outcome(box["value"], seconds, opened, connected)


def document(
    prolog: str = "",
    forename: str = "Ada",
    version: str = "3.1",
    extra: str = "",
    declaration: str = '<?xml version="1.0" encoding="UTF-8"?>',
) -> str:
    return (
        f"{declaration}\n{prolog}"
        f'<ecaf:CAFEpisode xmlns:ecaf="{NS}" schemaVersion="{version}">'
        "<ecaf:EpisodeRef>CAF-202-1</ecaf:EpisodeRef><ecaf:LocalAuthority>202</ecaf:LocalAuthority>"
        f"<ecaf:Status>Open</ecaf:Status><ecaf:Child><ecaf:Forename>{forename}</ecaf:Forename>"
        "<ecaf:Surname>Lovelace</ecaf:Surname><ecaf:Gender>F</ecaf:Gender></ecaf:Child>"
        f"{extra}</ecaf:CAFEpisode>"
    )


def _doctype(subset: str) -> str:
    return f"<!DOCTYPE ecaf:CAFEpisode [{subset}]>\n"


_LAUGHS = '<!ENTITY l0 "lol">' + "".join(
    f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10)
)
_XI = 'xmlns:xi="http://www.w3.org/2001/XInclude"'
_ATTRIBUTES = " ".join(f'a{i}="1"' for i in range(200_000))


@dataclass(frozen=True)
class Attack:
    name: str
    build: Callable[[Traps], bytes]
    code: str


ATTACKS = [
    Attack(
        "XXE: file:///etc/passwd in text",
        lambda t: document(
            _doctype('<!ENTITY x SYSTEM "file:///etc/passwd">'), forename="&x;"
        ).encode(),
        "unsupported_format",
    ),
    Attack(
        "XXE: local file in text",
        lambda t: document(_doctype(f'<!ENTITY x SYSTEM "{t.fifo_url}">'), forename="&x;").encode(),
        "unsupported_format",
    ),
    Attack(
        "XXE: local file in an attribute",
        lambda t: document(_doctype(f'<!ENTITY x SYSTEM "{t.fifo_url}">'), version="&x;").encode(),
        "unsupported_format",
    ),
    Attack(
        "XXE: http in text",
        lambda t: document(_doctype(f'<!ENTITY x SYSTEM "{t.http_url}">'), forename="&x;").encode(),
        "unsupported_format",
    ),
    Attack(
        "external DTD: local file",
        lambda t: document(f'<!DOCTYPE ecaf:CAFEpisode SYSTEM "{t.fifo_url}">\n').encode(),
        "unsupported_format",
    ),
    Attack(
        "external DTD: http://127.0.0.1:9/x.dtd",
        lambda t: document(
            '<!DOCTYPE ecaf:CAFEpisode SYSTEM "http://127.0.0.1:9/x.dtd">\n'
        ).encode(),
        "unsupported_format",
    ),
    Attack(
        "external DTD: http",
        lambda t: document(f'<!DOCTYPE ecaf:CAFEpisode SYSTEM "{t.http_url}">\n').encode(),
        "unsupported_format",
    ),
    Attack(
        "parameter entity: local file",
        lambda t: document(_doctype(f'<!ENTITY % p SYSTEM "{t.fifo_url}"> %p;')).encode(),
        "unsupported_format",
    ),
    Attack(
        "parameter entity: http",
        lambda t: document(_doctype(f'<!ENTITY % p SYSTEM "{t.http_url}"> %p;')).encode(),
        "unsupported_format",
    ),
    Attack(
        "billion laughs",
        lambda t: document(_doctype(_LAUGHS), forename="&l9;").encode(),
        "unsupported_format",
    ),
    Attack(
        "quadratic blow-up",
        lambda t: document(
            _doctype(f'<!ENTITY a "{"A" * 50_000}">'), forename="&a;" * 50_000
        ).encode(),
        "unsupported_format",
    ),
    Attack(
        "XInclude: file:///etc/passwd",
        lambda t: document(
            extra=f'<xi:include {_XI} href="file:///etc/passwd" parse="text"/>'
        ).encode(),
        "unsupported_format",
    ),
    Attack(
        "XInclude: local file",
        lambda t: document(extra=f'<xi:include {_XI} href="{t.fifo_url}" parse="text"/>').encode(),
        "unsupported_format",
    ),
    Attack(
        "XInclude: namespace written with a character reference",
        lambda t: document(
            extra='<xi:include xmlns:xi="http://www.w3.org/2001/&#88;Include" '
            'href="file:///etc/passwd" parse="text"/>'
        ).encode(),
        "unsupported_format",
    ),
    Attack(
        "a 10 MB text node",
        lambda t: document(forename="A" * 10 * 1024 * 1024).encode(),
        "payload_too_large",
    ),
    Attack(
        "a text just over the limit",
        lambda t: document(forename="A" * (MAX_TEXT_CHARS + 1)).encode(),
        "payload_too_large",
    ),
    Attack(
        "an attribute just over the limit",
        lambda t: document(version="3" * (MAX_TEXT_CHARS + 1)).encode(),
        "payload_too_large",
    ),
    Attack(
        "nesting 10,000 deep",
        lambda t: document(extra="<ecaf:X>" * 10_000 + "</ecaf:X>" * 10_000).encode(),
        "schema_violation",
    ),
    Attack(
        "nesting one level too deep",
        lambda t: document(extra="<ecaf:X>" * MAX_DEPTH + "</ecaf:X>" * MAX_DEPTH).encode(),
        "schema_violation",
    ),
    Attack(  # counting each one's same-named siblings again would take hours
        "400,000 unknown elements",
        lambda t: document(extra="<ecaf:X/>" * 400_000).encode(),
        "payload_too_large",
    ),
    Attack(  # lxml's items() / attrib are quadratic in the number of attributes
        "200,000 attributes on a known element",
        lambda t: document().replace("<ecaf:Child>", f"<ecaf:Child {_ATTRIBUTES}>").encode(),
        "payload_too_large",
    ),
    Attack(
        "200,000 attributes inside unknown content",
        lambda t: document(extra=f"<ecaf:X><ecaf:Y {_ATTRIBUTES}/></ecaf:X>").encode(),
        "payload_too_large",
    ),
    Attack(
        "invalid UTF-8",
        lambda t: document(forename="Zo\udcc3(").encode("utf-8", "surrogateescape"),
        "unsupported_format",
    ),
    Attack(
        "declared UTF-8, bytes ISO-8859-1",
        lambda t: document(forename="Zoë").encode("latin-1"),
        "unsupported_format",
    ),
    Attack(
        "declared UTF-16, bytes UTF-8",
        lambda t: document(
            forename="Zoë", declaration='<?xml version="1.0" encoding="UTF-16"?>'
        ).encode(),
        "unsupported_format",
    ),
    Attack(
        "declared ISO-8859-1, bytes UTF-8",
        lambda t: document(
            forename="Zoë", declaration='<?xml version="1.0" encoding="ISO-8859-1"?>'
        ).encode(),
        "unsupported_format",
    ),
    Attack(
        "an encoding nobody knows",
        lambda t: document(declaration='<?xml version="1.0" encoding="X-UNHEARD-OF"?>').encode(),
        "unsupported_format",
    ),
    Attack(
        "over the size limit",
        lambda t: document(extra=f"<!--{' ' * MAX_DOCUMENT_BYTES}-->").encode(),
        "payload_too_large",
    ),
]


@pytest.mark.parametrize("attack", ATTACKS, ids=lambda a: a.name)
def test_an_attack_is_refused_quickly_without_reading_anything(
    attack: Attack, traps: Traps
) -> None:
    data = attack.build(traps)
    outcome = watched(lambda: translate(data), traps)
    assert not outcome.opened, "a local file was opened"
    assert not outcome.connected, "a network connection was made"
    assert outcome.seconds < SLOW
    assert isinstance(outcome.value, AdapterError), "the document was not refused"
    said = f"{outcome.value} {outcome.value.location}"
    assert SECRET not in said and "root:" not in said and "Zo" not in said


@pytest.mark.parametrize("attack", ATTACKS, ids=lambda a: a.name)
def test_an_attack_gets_its_stable_code(attack: Attack, traps: Traps) -> None:
    data = attack.build(traps)
    outcome = watched(lambda: translate(data), traps)
    assert isinstance(outcome.value, AdapterError)
    assert outcome.value.code == attack.code


def test_the_attacks_are_real() -> None:
    """Without its attack, each document is a good one (so the refusals above are the attacks')."""
    assert one(document().encode()).child.given_names == "Ada"
    deep = document(extra="<ecaf:X>" * (MAX_DEPTH - 1) + "</ecaf:X>" * (MAX_DEPTH - 1))
    assert FORMAT in one(deep.encode()).extensions  # as deep as allowed: read, and kept
    latin1 = document(forename="Zoë", declaration='<?xml version="1.0" encoding="ISO-8859-1"?>')
    assert one(latin1.encode("latin-1")).child.given_names == "Zoë"
    assert len(document(extra=f"<!--{' ' * (MAX_DOCUMENT_BYTES - 1000)}-->")) <= MAX_DOCUMENT_BYTES


def test_the_answer_does_not_say_which_files_exist(traps: Traps) -> None:
    def answer(url: str) -> tuple[str, str, str]:
        error = refused(document(f'<!DOCTYPE ecaf:CAFEpisode SYSTEM "{url}">\n').encode())
        return error.code, error.location, error.message

    missing = traps.secret_file.with_name("no-such-file.dtd")
    assert answer(traps.secret_file.as_uri()) == answer(missing.as_uri())


def test_kept_content_is_parsed_as_safely_when_written(traps: Traps) -> None:
    """`from_national` parses kept XML again: a hostile one must not read anything either."""
    ns = f'xmlns:ecaf="{NS}"'

    def hostile(d: dict[str, Any]) -> None:
        d["extensions"] = {
            FORMAT: {
                "elements": [
                    {
                        "parent": "/CAFEpisode",
                        "after": None,
                        "xml": f'<!DOCTYPE ecaf:X SYSTEM "{traps.fifo_url}"><ecaf:X {ns}/>',
                    },
                    {
                        "parent": "/CAFEpisode",
                        "after": None,
                        "xml": f'<ecaf:Y {ns}><xi:include {_XI} href="{traps.fifo_url}"/></ecaf:Y>',
                    },
                    {
                        "parent": "/CAFEpisode",
                        "after": None,
                        "xml": f"<ecaf:Z {ns}>" + "<a>" * 10_000,
                    },
                ]
            }
        }

    episode = national(hostile)
    outcome = watched(lambda: write(episode), traps)
    assert not outcome.opened and not outcome.connected and outcome.seconds < SLOW
    assert isinstance(outcome.value, bytes)
    assert b"<ecaf:X" not in outcome.value and b"<ecaf:Y" not in outcome.value
    assert b"<ecaf:Z" not in outcome.value


def test_parse_xml_finds_xinclude_however_its_namespace_is_written() -> None:
    """The adapter refuses this itself (kept content is written back to other systems); the shared
    parser should too, for every adapter."""
    data = b'<r><i xmlns="http://www.w3.org/2001/&#88;Include" href="file:///etc/passwd"/></r>'
    with pytest.raises(AdapterError) as caught:
        parse_xml(data)
    assert caught.value.code == "unsupported_format"


def test_kept_content_in_bulk_is_written_quickly() -> None:
    """Kept content comes back from other nodes too: lots of it must not make writing slow."""
    ns = f'xmlns:ecaf="{NS}"'

    def bulk(d: dict[str, Any]) -> None:
        entry = {"parent": "/CAFEpisode", "after": "Review[2]", "xml": f"<ecaf:X {ns}/>"}
        attribute = {"element": "/CAFEpisode/Child", "name": "a", "value": "1"}
        d["extensions"] = {
            FORMAT: {"elements": [entry] * 50_000, "attributes": [attribute] * 50_000}
        }

    episode = national(bulk)
    start = time.monotonic()
    written = write(episode)
    assert time.monotonic() - start < SLOW
    assert 0 < written.count(b"<ecaf:X/>") <= 1_000
