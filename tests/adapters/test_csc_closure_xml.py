"""csc-closure-xml: the social care closing summary that steps a family down to a potential CAF."""

from __future__ import annotations

import datetime as dt
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from lxml import etree

from adapters._base import Adapter, AdapterError, Fate, Translation
from adapters.csc_closure_xml import ADAPTER, ECAF_ELEMENTS, NS
from schemas import Element, Episode, EpisodeState, Gender, StepDown
from tests.adapters.facts import examples, facts_path, load_facts, mismatches
from tests.strategies import episodes

_CONFORMS: Adapter = ADAPTER  # mypy checks the adapter protocol (extra keywords allowed)
EXAMPLES = examples("csc-closure-xml", ".xml")
OTHER_FORMATS = [
    p
    for name, suffix in (
        ("ecaf-xml-v3", ".xml"),
        ("eha-json", ".json"),
        ("caf-register-csv", ".csv"),
    )
    for p in examples(name, suffix)
]
RECEIVED = dt.datetime(2026, 6, 1, 9, 0, tzinfo=dt.UTC)
EXT = "csc-closure-xml"
# Facts the closing summary does not carry, each for a reason the document shows:
ABSENT = {
    "local_ref",  # the summary carries the social care case number, not the CAF reference (below)
    "parents",  # no parents or carers in a closing summary
    "address_lines",  # the child's postcode only
    "started_on",  # no assessment: nothing says when one started (see the package docstring)
    "completed_on",
    "assessor",  # the social worker has a team, not an organisation: kept in extensions
    "reason",  # InvolvementReason, kept in extensions (checked below)
    "elements",  # UnmetNeeds, kept in extensions (checked below)
    "consent",  # ConsentToShare has no giver's name, method or storage agreement
    "lead_professional",  # only the family's preference, by name (checked below)
    "tac.role",  # a continuing professional has a name, an agency and its type only
    "tac.authority",
    "tac.telephone",
    "tac.email",
    "plan",  # FamilyPriorities is a need without an action (checked below)
    "reviews",
    "closure",  # the CAF's later closure; this episode is potential
}


def translate(data: bytes) -> Translation:
    return ADAPTER.to_national(data, received_at=RECEIVED)


def one(data: bytes) -> Episode:
    translation = translate(data)
    assert len(translation.episodes) == 1
    return translation.episodes[0]


def content(episode: Episode) -> dict[str, Any]:
    """An episode without what each translation makes anew."""
    return episode.model_dump(mode="json", exclude={"episode_id"})


def canonical(element: etree._Element) -> tuple[Any, ...]:
    """An element by meaning: local name (our namespace or none), attributes, stripped text and
    children in any order; prefixes, formatting and order do not count."""
    qname = etree.QName(element)
    name = qname.localname if qname.namespace in (NS, None) else qname.text
    kids = sorted(canonical(c) for c in element.iterchildren(etree.Element))
    attributes = tuple(sorted((k, v.strip()) for k, v in element.attrib.items()))
    pieces = [element.text, *(c.tail for c in element)]  # text between children counts, not where
    text = " ".join(p.strip() for p in pieces if p and p.strip())
    return (name, attributes, text, tuple(kids))


def same_meaning(a: bytes, b: bytes) -> bool:
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    return canonical(etree.fromstring(a, parser)) == canonical(etree.fromstring(b, parser))


def ext_of(episode: Episode) -> dict[str, Any]:
    return dict(episode.extensions[EXT])


# --- detection ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_detects_its_examples(path: Path) -> None:
    assert ADAPTER.detect(path.read_bytes())


@pytest.mark.parametrize("path", OTHER_FORMATS, ids=lambda p: p.name)
def test_does_not_detect_other_formats(path: Path) -> None:
    assert not ADAPTER.detect(path.read_bytes())


@pytest.mark.parametrize("data", [b"", b"\xff\xfe\x00", b"<ClosingSummary/>", b"{}" * 5000])
def test_detect_never_raises(data: bytes) -> None:
    assert ADAPTER.detect(data) is False


# --- the facts --------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_recovers_the_facts(path: Path) -> None:
    facts = load_facts(facts_path(path))[0]
    episode = one(path.read_bytes())
    assert mismatches(episode, facts, 0, ABSENT) == []
    assert facts["step_down"] is True and episode.source.step_down is StepDown.CSC
    assert episode.state is EpisodeState.POTENTIAL and episode.closure is None
    assert episode.source.format == EXT and episode.source.received_at == RECEIVED
    # The case number is the social care case's: the facts' CAF reference with the CSC prefix.
    assert episode.local_ref == "CSC-" + facts["local_ref"].removeprefix("CAF-")
    # What the closing summary holds in place of an assessment, kept in extensions, agrees with it.
    kept = ext_of(episode)
    assert kept["InvolvementReason"] == facts["reason"]
    assert kept["Strengths"] == facts["elements"][0]["strengths"]
    assert kept["FamilyPriorities"] == facts["plan"][0]["need"]
    assert kept["ClosedOn"] == facts["completed_on"]
    assert kept["ConsentToShare"]["@date"] == facts["consent"]["given_on"]
    assert kept["PreferredLeadProfessional"] == facts["lead_professional"]["name"]
    by_code = {e["local"]: e for e in facts["elements"]}
    needs = kept["UnmetNeeds"]["Need"]
    assert needs, "every example has unmet needs"
    for need in needs:
        fact = by_code[need["@element"]]
        assert need["#text"] == fact["needs"]
        assert ECAF_ELEMENTS[need["@element"]].value == fact["national"]
    assert facts["extras"] == {}


def test_every_local_field_is_accounted_for() -> None:
    translation = translate(EXAMPLES[0].read_bytes())
    located = {f.location for f in translation.report.fields}
    root = etree.fromstring(EXAMPLES[0].read_bytes())
    leaves = [e for e in root.iter(etree.Element) if len(e) == 0]
    assert len(leaves) > 20
    for leaf in leaves:
        steps = []
        for element in [leaf, *leaf.iterancestors()]:
            parent, name = element.getparent(), etree.QName(element).localname
            same = [] if parent is None else [c for c in parent if c.tag == element.tag]
            steps.append(f"{name}[{same.index(element) + 1}]" if len(same) > 1 else name)
        path = "/" + "/".join(reversed(steps))
        fields = [f"{path}/@{a}" for a in leaf.attrib]
        if leaf.text and leaf.text.strip():
            fields.append(f"{path}/text()" if leaf.attrib else path)
        assert fields and all(f in located for f in fields), path
    counts = translation.report.counts()
    assert counts[Fate.REJECTED] == 0 and counts[Fate.EXTENDED] > 0 and counts[Fate.MAPPED] > 0


def test_element_codes_follow_the_national_order() -> None:
    assert list(ECAF_ELEMENTS.values()) == list(Element)
    assert ECAF_ELEMENTS["DEV.HEALTH.SLC"] is Element.SPEECH_LANGUAGE_COMMUNICATION
    assert ECAF_ELEMENTS["FAM.COMMUNITY"] is Element.SOCIAL_COMMUNITY_RESOURCES


# --- round trips ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_round_trip_restores_the_document(path: Path) -> None:
    original = path.read_bytes()
    episode = one(original)
    written = ADAPTER.from_national([episode])
    assert written == original  # the examples' own shape, byte for byte
    assert same_meaning(written, original)
    assert content(one(written)) == content(episode)


def test_writes_one_episode_per_document() -> None:
    episode = one(EXAMPLES[0].read_bytes())
    with pytest.raises(AdapterError) as caught:
        ADAPTER.from_national([episode, episode])
    assert caught.value.code == "unsupported_format"


def _strip_stable(*values: str | None) -> bool:
    return all(v is None or (v.strip() == v and v) for v in values)


@given(episodes())
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_national_episode_keeps_what_has_a_home_here(episode: Episode) -> None:
    """Episodes from elsewhere: what the closing summary can hold comes back; the rest has no home."""
    child = episode.child
    assume(_strip_stable(child.given_names, child.family_name, episode.local_ref))
    assume(all(_strip_stable(t.name, t.organisation) for t in episode.tac_members))
    lead = episode.lead_professional
    assume(lead is None or _strip_stable(lead.name))
    back = one(ADAPTER.from_national([episode]))
    assert back.local_ref == episode.local_ref
    assert back.home_authority == episode.home_authority
    got, want = back.child, episode.child
    assert (got.given_names, got.family_name) == (want.given_names, want.family_name)
    assert got.date_of_birth == want.date_of_birth
    expected_gender = Gender.UNKNOWN if want.gender is Gender.NOT_STATED else want.gender
    assert got.gender is expected_gender
    assert got.identifiers.nhs_number == want.identifiers.nhs_number
    assert got.identifiers.upn == want.identifiers.upn
    assert got.ethnicity == want.ethnicity
    assert (got.address and got.address.postcode) == (want.address and want.address.postcode)
    core = [(t.name, t.organisation, t.agency_type) for t in episode.tac_members]
    assert [(t.name, t.organisation, t.agency_type) for t in back.tac_members] == core
    matches = [t for t in core if lead is not None and t[0] == lead.name]
    if lead is not None and len(matches) == 1:
        assert back.lead_professional is not None
        assert (back.lead_professional.name, back.lead_professional.organisation) == matches[0][:2]
    else:
        assert back.lead_professional is None
        kept = back.extensions.get(EXT, {}).get("PreferredLeadProfessional")
        assert kept == (lead.name if lead else None)
    assert back.state is EpisodeState.POTENTIAL and back.source.step_down is StepDown.CSC


# --- real-world variation ---------------------------------------------------------------------------


def _base() -> bytes:
    return EXAMPLES[2].read_bytes()  # has Zoë, Siobhán and an em dash


def _prefixed(data: bytes, prefix: str = "cs") -> bytes:
    text = data.decode("utf-8").replace(f'xmlns="{NS}"', f'xmlns:{prefix}="{NS}"')
    return re.sub(r"<(/?)(?=[A-Za-z])", rf"<\1{prefix}:", text).encode("utf-8")


def _children_unqualified(data: bytes) -> bytes:
    """A sloppy exporter: the root is prefixed, its descendants are left in no namespace."""
    text = data.decode("utf-8").replace(
        f'<ClosingSummary xmlns="{NS}">', f'<c:ClosingSummary xmlns:c="{NS}">'
    )
    return text.replace("</ClosingSummary>", "</c:ClosingSummary>").encode("utf-8")


def _shuffled(data: bytes) -> bytes:
    """Elements in another order; repeated elements (a list) keep theirs."""
    root = etree.fromstring(data)
    shuffle = random.Random(7).shuffle  # noqa: S311  # a repeatable shuffle, not a secret
    for element in root.iter(etree.Element):
        groups: dict[str, list[etree._Element]] = {}
        for kid in element:
            groups.setdefault(str(kid.tag), []).append(kid)
        order = list(groups.values())
        shuffle(order)
        element[:] = [kid for group in order for kid in group]
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _latin1(data: bytes) -> bytes:
    text = data.decode("utf-8").replace('encoding="UTF-8"', 'encoding="ISO-8859-1"')
    return text.encode("latin-1", errors="xmlcharrefreplace")  # the em dash as &#8212;


def _pretty(data: bytes) -> bytes:
    root = etree.fromstring(data)
    for element in root.iter(etree.Element):
        if element.text and element.text.strip():
            element.text = f"\n   {element.text}  \t"
    etree.indent(root, space="    ")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _cdata(data: bytes) -> bytes:
    root = etree.fromstring(data)
    for element in root.iter(f"{{{NS}}}Need", f"{{{NS}}}Given", f"{{{NS}}}Strengths"):
        element.text = etree.CDATA(element.text or "")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _comments(data: bytes) -> bytes:
    text = data.decode("utf-8").replace("<Child>", "<Child><!-- exported by ICS -->")
    return text.replace("<Sex>", "<!-- CIN code --><Sex>").encode("utf-8")


VARIANTS: dict[str, Callable[[bytes], bytes]] = {
    "prefixed": _prefixed,
    "other prefix": lambda d: _prefixed(d, "ics"),
    "children in no namespace": _children_unqualified,
    "shuffled": _shuffled,
    "bom": lambda d: b"\xef\xbb\xbf" + d,
    "crlf": lambda d: d.replace(b"\n", b"\r\n"),
    "iso-8859-1": _latin1,
    "whitespace": _pretty,
    "cdata": _cdata,
    "comments": _comments,
    "no declaration": lambda d: d.split(b"?>", 1)[1].lstrip(),
}


@pytest.mark.parametrize("variant", VARIANTS, ids=str)
def test_variants_read_alike(variant: str) -> None:
    base = _base()
    data = VARIANTS[variant](base)
    assert data != base
    assert ADAPTER.detect(data)
    assert content(one(data)) == content(one(base))


def test_latin1_names_survive() -> None:
    episode = one(_latin1(_base()))
    assert "Zoë Adeyemi-Jones" in [t.name for t in episode.tac_members]
    needs = ext_of(episode)["UnmetNeeds"]["Need"]
    assert any("—" in n["#text"] for n in needs)


def test_cdata_keeps_markup_characters() -> None:
    base = (
        EXAMPLES[0]
        .read_bytes()
        .replace(b"enjoys art &amp; music.", b"<![CDATA[enjoys <art> & music.]]>")
    )
    needs = ext_of(one(base))["UnmetNeeds"]["Need"]
    assert needs[2]["#text"] == "Attends regularly; enjoys <art> & music."


UNKNOWN = {
    b"<Case>": b'<Case caseType="CIN"><Team>Hackney CIN</Team>',
    b"<Sex>": b'<Religion>None</Religion><Sex codeSet="CIN">',
    b"<Name><Given>": b"<Name><Middle>Rose</Middle><Given>",
    b"<Professional><Name>Fatima": b'<Professional><x:Note xmlns:x="urn:other">on leave</x:Note><Name>Fatima',
    b"</ClosingSummary>": b'<ReviewedBy grade="7"><Name>Team manager</Name></ReviewedBy>\n</ClosingSummary>',
    b'<ClosingSummary xmlns="urn:x-csc:ics:closure:1">': (
        b'<ClosingSummary xmlns="urn:x-csc:ics:closure:1" version="2"'
        b' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="urn:x closure.xsd">'
    ),
}


def _with_unknowns() -> bytes:
    data = _base()
    for old, new in UNKNOWN.items():
        assert data.count(old) == 1, old
        data = data.replace(old, new)
    return data


def test_unknown_elements_and_attributes_are_kept_and_written_back() -> None:
    data = _with_unknowns()
    translation = translate(data)
    episode = translation.episodes[0]
    kept = ext_of(episode)
    assert kept["ReviewedBy"] == {"@grade": "7", "Name": "Team manager"}
    assert kept["Case"]["Team"] == "Hackney CIN" and kept["Case"]["@caseType"] == "CIN"
    assert kept["Child"]["Religion"] == "None"
    assert kept["Child"]["Sex"] == {"@codeSet": "CIN"}
    assert kept["Child"]["Name"] == {"Middle": "Rose"}
    assert kept["@version"] == "2"
    note = {
        "Name": "Fatima Kowalski",
        "Agency": "Housing Needs Team",
        "{urn:other}Note": "on leave",
    }
    assert kept["#tac_members"] == [note]  # named by the professional who carried it
    assert episode.child.given_names == "Leah" and episode.child.gender is Gender.MALE
    unknown = [f for f in translation.report.fields if f.rule == "extension.unknown_element"]
    assert "/ClosingSummary/ReviewedBy/Name" in {f.location for f in unknown}
    written = ADAPTER.from_national([episode])
    assert same_meaning(written, data)
    assert content(one(written)) == content(episode)


def test_repeated_unknown_elements_and_stray_text_are_kept() -> None:
    note = b"<Note>first</Note>"
    data = _with(b"<ClosedOn>", note + b"stray <Note>second</Note><ClosedOn>")
    translation = translate(data)
    kept = ext_of(translation.episodes[0])
    assert kept["Note"] == ["first", "second"] and kept["#text"] == "stray"
    located = {f.location for f in translation.report.fields}
    assert {"/ClosingSummary/Note[1]", "/ClosingSummary/Note[2]"} <= located
    assert "/ClosingSummary/text()" in located
    written = ADAPTER.from_national(translation.episodes)
    assert same_meaning(written, data)
    assert content(one(written)) == content(translation.episodes[0])


def test_unknown_elements_survive_the_national_json_trip() -> None:
    """Extensions are plain JSON: through the national JSON document and back, nothing changes."""
    episode = one(_with_unknowns())
    again = Episode.model_validate_json(episode.model_dump_json())
    assert same_meaning(ADAPTER.from_national([again]), _with_unknowns())


# --- codes and checks -------------------------------------------------------------------------------


def _with(old: bytes, new: bytes, path: Path | None = None) -> bytes:
    data = (path or EXAMPLES[0]).read_bytes()
    assert data.count(old) == 1, old
    return data.replace(old, new)


@pytest.mark.parametrize(
    ("code", "gender"),
    [("1", Gender.MALE), ("2", Gender.FEMALE), ("0", Gender.UNKNOWN), ("9", Gender.INDETERMINATE)],
)
def test_cin_sex_codes(code: str, gender: Gender) -> None:
    episode = one(_with(b"<Sex>1</Sex>", f"<Sex> {code} </Sex>".encode()))
    assert episode.child.gender is gender
    assert f"<Sex>{code}</Sex>".encode() in ADAPTER.from_national([episode])


def test_not_stated_is_written_as_not_recorded() -> None:
    episode = one(EXAMPLES[0].read_bytes())
    child = episode.child.model_copy(update={"gender": Gender.NOT_STATED})
    written = ADAPTER.from_national([episode.model_copy(update={"child": child})])
    assert b"<Sex>0</Sex>" in written


def _refused(data: bytes) -> AdapterError:
    with pytest.raises(AdapterError) as caught:
        translate(data)
    return caught.value


@pytest.mark.parametrize(
    ("old", "new", "location"),
    [
        (b"<Sex>1</Sex>", b"<Sex>M</Sex>", "/ClosingSummary/Child/Sex"),
        (b"<Sex>1</Sex>", b"", "/ClosingSummary/Child/Sex"),
        (b"<Given>Jack</Given>", b"<Given>  </Given>", "/ClosingSummary/Child/Name/Given"),
        (b"<LA>E09000030</LA>", b"", "/ClosingSummary/Case/LA"),
        (b"<LA>E09000030</LA>", b"<LA>Southwark</LA>", "/ClosingSummary/Case/LA"),
        (b"<Postcode>", b"<Sex>2</Sex><Postcode>", "/ClosingSummary/Child/Sex[2]"),
    ],
)
def test_a_document_without_a_required_value_is_refused(
    old: bytes, new: bytes, location: str
) -> None:
    error = _refused(_with(old, new))
    assert error.code == "schema_violation"
    assert error.location == location
    for personal in ("Jack", "Adeyemi", "Southwark", "E09000030"):
        assert personal not in str(error)


@pytest.mark.parametrize(
    ("old", "new", "where", "rule"),
    [
        (
            b"<NHSNo>5640255498</NHSNo>",
            b"<NHSNo>5640255499</NHSNo>",
            "NHSNo",
            "nhs_number.checksum",
        ),
        (b"<NHSNo>5640255498</NHSNo>", b"<NHSNo>56402</NHSNo>", "NHSNo", "nhs_number.format"),
        (b"<BirthDate>2023-02-19", b"<BirthDate>2099-02-19", "BirthDate", "dates.birth_in_future"),
        (b"<BirthDate>2023-02-19", b"<BirthDate>19/02/2023", "BirthDate", "date.iso"),
        (b"<BirthDate>2023-02-19", b"<BirthDate>2023-02-19+14:30", "BirthDate", "date.iso"),
        (b"<BirthDate>2023-02-19", b"<BirthDate>2023-02-30Z", "BirthDate", "date.iso"),
        (b"<BirthDate>2023-02-19", b"<BirthDate>2099-02-19Z", "BirthDate", "dates.birth_in_future"),
        (b"<Ethnicity>MOTH", b"<Ethnicity>Mixed", "Ethnicity", "ethnicity.code"),
        (b"<Postcode>E14 7FJ", b"<Postcode>London", "Postcode", "postcode.format"),
    ],
)
def test_an_invalid_optional_value_is_rejected_and_the_rest_kept(
    old: bytes, new: bytes, where: str, rule: str
) -> None:
    translation = translate(_with(old, new))
    rejected = [f for f in translation.report.fields if f.fate is Fate.REJECTED]
    assert [(f.location, f.rule) for f in rejected] == [(f"/ClosingSummary/Child/{where}", rule)]
    assert rejected[0].message and "5640255499" not in rejected[0].message
    episode = translation.episodes[0]
    assert episode.child.given_names == "Jack" and len(episode.tac_members) == 3


@pytest.mark.parametrize("zone", ["Z", "+01:00", "-14:00"])
def test_a_birth_date_with_a_time_zone_keeps_its_calendar_date(zone: str) -> None:
    """xs:date allows a time zone: the date is read, the zone dropped and said so."""
    translation = translate(
        _with(b"<BirthDate>2023-02-19", f"<BirthDate>2023-02-19{zone}".encode())
    )
    episode = translation.episodes[0]
    assert episode.child.date_of_birth == dt.date(2023, 2, 19)
    (birth,) = [f for f in translation.report.fields if f.location.endswith("/BirthDate")]
    assert (birth.fate, birth.target, birth.rule) == (
        Fate.TRANSFORMED,
        "child.date_of_birth",
        "date.timezone_dropped",
    )
    assert "BirthDate" not in ext_of(episode).get("Child", {})
    written = ADAPTER.from_national([episode])
    assert b"<BirthDate>2023-02-19</BirthDate>" in written  # the zone is not written back
    assert content(one(written)) == content(episode)


def test_identifiers_and_codes_are_normalised() -> None:
    data = _with(b"<NHSNo>5640255498</NHSNo>", b"<NHSNo>564 025 5498</NHSNo>")
    data = data.replace(b"<Postcode>E14 7FJ", b"<Postcode>e147fj").replace(b"MOTH", b"moth")
    translation = translate(data)
    child = translation.episodes[0].child
    assert child.identifiers.nhs_number == "5640255498"
    assert child.address is not None and child.address.postcode == "E14 7FJ"
    assert child.ethnicity is not None and child.ethnicity.value == "MOTH"
    rules = {f.location.rsplit("/", 1)[1]: f.rule for f in translation.report.fields}
    assert rules["NHSNo"] == "identifier.normalise"
    assert rules["Postcode"] == "postcode.normalise"
    assert rules["Ethnicity"] == "ethnicity.upper"


def test_postcode_that_fails_bs7666_is_a_warning() -> None:
    translation = translate(_with(b"<Postcode>E14 7FJ", b"<Postcode>QQ1 1QQ"))
    assert [(w.rule, w.where) for w in translation.warnings] == [
        ("postcode.not_bs7666", "/ClosingSummary/Child/Postcode")
    ]


def test_an_unknown_need_element_is_kept_with_a_warning() -> None:
    translation = translate(_with(b'element="FAM.HISTORY"', b'element="FAM.PETS"'))
    assert [(w.rule, w.where) for w in translation.warnings] == [
        ("element.ecaf_code", "/ClosingSummary/UnmetNeeds/Need[2]/@element")
    ]
    need = ext_of(translation.episodes[0])["UnmetNeeds"]["Need"][1]
    assert need["@element"] == "FAM.PETS"


@pytest.mark.parametrize(
    ("consent", "where"),
    [
        (b'<ConsentToShare given="false" date="2026-03-11" by="parent"/>', "/@given"),
        (b"", ""),
    ],
)
def test_missing_or_refused_consent_is_a_warning(consent: bytes, where: str) -> None:
    data = _with(b'<ConsentToShare given="true" date="2026-03-11" by="parent"/>', consent)
    translation = translate(data)
    assert [(w.rule, w.where) for w in translation.warnings] == [
        ("consent.not_given", f"/ClosingSummary/ConsentToShare{where}")
    ]
    assert translation.episodes[0].consents == []


# --- professionals ----------------------------------------------------------------------------------


def test_preferred_lead_professional_naming_one_continuing_professional_leads() -> None:
    data = _with(
        b"<PreferredLeadProfessional>Mohammed Okafor<",
        "<PreferredLeadProfessional> Renée Nowak<".encode(),
    )
    translation = translate(data)
    episode = translation.episodes[0]
    lead = episode.lead_professional
    assert lead is not None
    assert (lead.name, lead.organisation, lead.agency_type.value) == (
        "Renée Nowak",
        "Home-Start",
        "voluntary",
    )
    assert "PreferredLeadProfessional" not in ext_of(episode)
    fates = {f.location: f.rule for f in translation.report.fields}
    rule = fates["/ClosingSummary/PreferredLeadProfessional"]
    assert rule == "lead_professional.preferred_continuing_professional"
    written = ADAPTER.from_national([episode])
    assert "<PreferredLeadProfessional>Renée Nowak</PreferredLeadProfessional>".encode() in written
    assert content(one(written)) == content(episode)


def test_preference_naming_two_professionals_stays_a_preference() -> None:
    data = _with(
        b"<PreferredLeadProfessional>Mohammed Okafor<", b"<PreferredLeadProfessional>Ewa Hussain<"
    )
    data = data.replace("<Name>Renée Nowak</Name>".encode(), b"<Name>Ewa Hussain</Name>")
    episode = one(data)
    assert episode.lead_professional is None
    assert ext_of(episode)["PreferredLeadProfessional"] == "Ewa Hussain"


@pytest.mark.parametrize(
    "broken",
    [
        b"<AgencyType>Voluntary sector</AgencyType>",
        b"",
    ],
)
def test_incomplete_professional_is_kept_whole(broken: bytes) -> None:
    data = _with(b"<AgencyType>voluntary</AgencyType>", broken)
    translation = translate(data)
    episode = translation.episodes[0]
    assert [t.name for t in episode.tac_members] == ["Ewa Hussain", "Tomás O'Connor"]
    kept = ext_of(episode)["ContinuingProfessionals"]["Professional"]
    assert kept[0]["Name"] == "Renée Nowak" and kept[0]["Agency"] == "Home-Start"
    messages = [
        f.message
        for f in translation.report.fields
        if f.location.startswith("/ClosingSummary/ContinuingProfessionals/Professional[2]")
    ]
    assert messages and all(m and m.startswith("AgencyType") for m in messages)
    written = ADAPTER.from_national([episode])
    assert same_meaning(written, data)


# --- refusals ----------------------------------------------------------------------------------------


def test_other_root_is_unsupported() -> None:
    data = b'<?xml version="1.0"?><CAFEpisode xmlns="urn:x-caf:ecaf:3"/>'
    assert _refused(data).code == "unsupported_format"


def test_root_outside_the_namespace_is_unsupported() -> None:
    data = EXAMPLES[0].read_bytes().replace(f' xmlns="{NS}"'.encode(), b"")
    assert _refused(data).code == "unsupported_format"


def test_entities_are_never_expanded() -> None:
    data = (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
        b'<ClosingSummary xmlns="urn:x-csc:ics:closure:1">&e;</ClosingSummary>'
    )
    assert _refused(data).code == "unsupported_format"


def test_not_well_formed_is_a_schema_violation_without_content() -> None:
    error = _refused(EXAMPLES[0].read_bytes().replace(b"</Child>", b"</Kid>"))
    assert error.code == "schema_violation" and "Adeyemi" not in str(error)


def test_extensions_xml_cannot_carry_are_refused_on_writing() -> None:
    episode = one(EXAMPLES[0].read_bytes())
    bad = {EXT: {**ext_of(episode), "not a name": "x"}}
    with pytest.raises(AdapterError) as caught:
        ADAPTER.from_national([episode.model_copy(update={"extensions": bad})])
    assert caught.value.code == "schema_violation"
