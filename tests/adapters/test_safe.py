"""The shared hardened parsing (`adapters/_safe.py`), on what reviewers found getting through."""

from __future__ import annotations

import time

import pytest

from adapters import AdapterError, detect_adapter, get_adapter
from adapters._safe import (
    MAX_DEPTH,
    MAX_DOCUMENT_BYTES,
    MAX_NAMESPACE_DECLARATIONS,
    MAX_TEXT_CHARS,
    READ_AS_WINDOWS_1252,
    parse_json,
    parse_xml,
)
from schemas import Problem

from .facts import EXAMPLES

ECAF = (EXAMPLES / "ecaf-xml-v3" / "ecaf-xml-v3-101-0.xml").read_bytes()


def _refused(parse: object, data: bytes) -> AdapterError:
    with pytest.raises(AdapterError) as caught:
        parse(data)  # type: ignore[operator]
    return caught.value


def test_a_flood_of_namespace_declarations_is_refused_quickly() -> None:
    """Each element kept whole would carry all of them: a 120 KB file once took 14 s."""
    declarations = " ".join(f'xmlns:n{i}="urn:n{i}"' for i in range(5_000))
    unknown = "".join(f"<ecaf:Extra{i}>x</ecaf:Extra{i}>" for i in range(100))
    data = ECAF.replace(b"<ecaf:Child>", f"<ecaf:Child {declarations}>{unknown}".encode(), 1)
    started = time.perf_counter()
    error = _refused(get_adapter("ecaf-xml-v3").to_national, data)
    assert error.code == "payload_too_large"
    assert time.perf_counter() - started < 5  # a guard against the blow-up, not a speed target


def test_namespace_declarations_up_to_the_limit_are_taken() -> None:
    declarations = " ".join(
        f'xmlns:n{i}="urn:n{i}"' for i in range(MAX_NAMESPACE_DECLARATIONS - 1)
    )  # the document declares one already
    root = parse_xml(b"<r " + declarations.encode() + b' xmlns="urn:d"><a xmlns="urn:d"/></r>')
    assert len(root.nsmap) == MAX_NAMESPACE_DECLARATIONS
    # The same declaration repeated on a child is not a new one ... but a flood on children is.
    flood = "".join(f'<c xmlns:m{i}="urn:m{i}"/>' for i in range(MAX_NAMESPACE_DECLARATIONS + 1))
    assert _refused(parse_xml, f"<r>{flood}</r>".encode()).code == "payload_too_large"


@pytest.mark.parametrize("encoding", ["windows-1252", "ISO-8859-15", "cp1252", "latin-9"])
def test_utf8_labelled_as_any_one_byte_encoding_is_refused(encoding: str) -> None:
    data = ECAF.replace(b'encoding="UTF-8"', f'encoding="{encoding}"'.encode(), 1)
    assert data != ECAF and "ë".encode() in data
    error = _refused(parse_xml, data)
    assert (error.code, error.location) == ("unsupported_format", "line 1")


def test_a_one_byte_document_still_reads() -> None:
    data = '<?xml version="1.0" encoding="windows-1252"?><r>Zoë €</r>'.encode("cp1252")
    assert parse_xml(data).text == "Zoë €"


@pytest.mark.parametrize(
    "document",
    [b'{"a": 1e999}', b'{"a": -1e999}', b'{"a": ' + b"9" * 5_000 + b"}"],
    ids=["infinity", "minus infinity", "5000 digits"],
)
def test_numbers_json_cannot_carry_are_a_located_violation(document: bytes) -> None:
    error = _refused(parse_json, document)
    assert error.code == "schema_violation"
    assert error.message == (
        "a number is out of range" if b"e999" in document else "a number has too many digits"
    )


@pytest.mark.parametrize(
    ("document", "location", "message"),
    [
        (b'{"a": [1, {"b": NaN}]}', "/a/1/b", "NaN is not a JSON number"),
        (b'[{"x": 1}, {"x": 1, "y": {"k": 1, "k": 2}}]', "/1/y", "an object repeats a key"),
        (b'{"a": {"b~/c": [0, -1e999]}}', "/a/b~0~1c/1", "a number is out of range"),
        (b'{"a": {"k": "x\\udc00"}}', "/a/k", "a string holds a lone UTF-16 surrogate"),
        (b'{"a": {"\\ud800": 1}}', "/a", "a string holds a lone UTF-16 surrogate"),
        # Two breaches: the first in document order is named, its own rule with its own place.
        (b'{"a": NaN, "b": "\\ud800"}', "/a", "NaN is not a JSON number"),
        (b'{"x": 1, "x": {"y": NaN}}', "/", "an object repeats a key"),
    ],
    ids=[
        "NaN",
        "repeated key",
        "out of range",
        "lone surrogate",
        "surrogate in a name",
        "NaN then a surrogate",
        "NaN inside a repeat",
    ],
)
def test_what_json_must_not_hold_is_refused_at_its_pointer(
    document: bytes, location: str, message: str
) -> None:
    """A borough system is told where: the first such value's JSON pointer (an object's, for a
    repeated key or a name), never the value."""
    error = _refused(parse_json, document)
    assert (error.code, error.location, error.message) == ("schema_violation", location, message)


def test_ordinary_numbers_still_parse() -> None:
    assert parse_json(b'{"a": 1.5, "b": -2, "c": 1e300}') == {"a": 1.5, "b": -2, "c": 1e300}


@pytest.mark.parametrize("number", ["NaN", "Infinity", "1e999"])
def test_national_xml_extensions_take_only_finite_numbers(number: str) -> None:
    """Else the episode holds a value that no JSON (national-json, the API) can be written with."""
    episode = get_adapter("ecaf-xml-v3").to_national(ECAF).episodes[0]
    episode = episode.model_copy(update={"extensions": {"x": {"n": 1.5}}})
    national = get_adapter("national-xml")
    data = national.from_national([episode])
    assert national.to_national(data).episodes[0].extensions == {"x": {"n": 1.5}}
    bad = data.replace(
        b'<number key="n">1.5</number>', f'<number key="n">{number}</number>'.encode()
    )
    assert bad != data
    assert _refused(national.to_national, bad).code == "schema_violation"


def test_detection_reads_structure_not_mentions() -> None:
    """A local document that mentions the national schema in a text or a comment is still local."""
    ecaf = ECAF.replace(b"<ecaf:Child>", b"<!-- urn:caf:national:1 --><ecaf:Child>", 1)
    assert detect_adapter(ecaf).name == "ecaf-xml-v3"
    eha = (EXAMPLES / "eha-json" / "eha-json-101-0.json").read_bytes()
    mentioned = eha.replace(b"{", b'{"note": "see caf-episode/1, \\"schema\\": x",', 1)
    assert detect_adapter(mentioned).name == "eha-json"
    register = (EXAMPLES / "caf-register-csv" / "register-101.csv").read_bytes()
    lines = register.split(b"\n")
    lines[1] = lines[1].replace(b"Mensah", b"caf-episode/1", 1)
    assert detect_adapter(b"\n".join(lines)).name == "caf-register-csv"
    national = get_adapter("national-xml")
    episode = get_adapter("ecaf-xml-v3").to_national(ECAF).episodes[0]
    assert detect_adapter(national.from_national([episode])).name == "national-xml"
    as_json = get_adapter("national-json").from_national([episode])
    assert detect_adapter(as_json).name == "national-json"


def test_a_literal_backslash_u_in_a_text_is_not_a_surrogate() -> None:
    assert parse_json(b'{"a": "C:\\\\ud800"}') == {"a": "C:\\ud800"}
    assert _refused(parse_json, b'{"a": "\\\\\\ud800"}').code == "schema_violation"  # \\ then one


# -- ISO-8859-1 and US-ASCII read as windows-1252 (WHATWG Encoding Standard) ------------------------

WINDOWS_TEXT = "Zoë’s “plan” – €5 …"  # ’ “ ” – € … are bytes 0x80 to 0x9F in windows-1252


def _labelled(label: str, text: str = WINDOWS_TEXT, quote: str = '"') -> bytes:
    declaration = f"<?xml version={quote}1.0{quote} encoding={quote}{label}{quote}?>"
    return f"{declaration}\n<r a='{text}'>{text}</r>".encode("cp1252")


@pytest.mark.parametrize(
    ("label", "quote"),
    [
        ("ISO-8859-1", '"'),
        ("iso-8859-1", "'"),
        ("ISO_8859-1", '"'),
        ("latin1", '"'),
        ("Latin-1", '"'),
        ("l1", '"'),
        ("US-ASCII", '"'),
        ("ascii", "'"),
    ],
)
def test_windows_1252_labelled_iso_8859_1_or_ascii_reads_as_windows_1252(
    label: str, quote: str
) -> None:
    notes: list[Problem] = []
    root = parse_xml(_labelled(label, quote=quote), notes)
    assert root.text == WINDOWS_TEXT and root.get("a") == WINDOWS_TEXT
    assert [(n.rule, n.severity, n.where) for n in notes] == [
        (READ_AS_WINDOWS_1252, "warning", "line 1")
    ]


def test_bytes_windows_1252_leaves_unassigned_read_as_whatwg_reads_them() -> None:
    data = b'<?xml version="1.0" encoding="ISO-8859-1"?><r>\x81\x8d\x8f\x90\x9d\x80</r>'
    assert parse_xml(data).text == "\x81\x8d\x8f\x90\x9d€"


@pytest.mark.parametrize(
    "data",
    [
        _labelled("ISO-8859-1", "Zoë Adeyemi-Jones"),  # no byte 0x80 to 0x9F: ISO-8859-1 as is
        _labelled("US-ASCII", "Zoe"),
        _labelled("windows-1252"),  # read as windows-1252 already
        ECAF,
    ],
    ids=["latin-1 text", "ascii text", "windows-1252", "utf-8"],
)
def test_documents_that_read_alike_either_way_are_not_noted(data: bytes) -> None:
    notes: list[Problem] = []
    parse_xml(data, notes)
    assert notes == []
    assert parse_xml(_labelled("ISO-8859-1", "Zoë")).text == "Zoë"


def test_utf8_labelled_us_ascii_is_refused_not_guessed() -> None:
    data = '<?xml version="1.0" encoding="US-ASCII"?><r>Zoë’s</r>'.encode()
    error = _refused(parse_xml, data)
    assert (error.code, error.location) == ("unsupported_format", "line 1")


def test_a_utf8_bom_says_utf8_whatever_the_label() -> None:
    data = b"\xef\xbb\xbf" + _labelled("ISO-8859-1")
    assert _refused(parse_xml, data).code == "unsupported_format"  # not UTF-8: not guessed


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (
            b'<?xml version="1.0" encoding="ISO-8859-1"?>\n'
            b'<!DOCTYPE r [<!ENTITY e "\x92">]><r>&e;</r>',
            "unsupported_format",
        ),
        (
            b'<?xml version="1.0" encoding="ISO-8859-1"?>'
            + b"<a>" * (MAX_DEPTH + 2)
            + b"\x92"
            + b"</a>" * (MAX_DEPTH + 2),
            "schema_violation",
        ),
        (
            b'<?xml version="1.0" encoding="ISO-8859-1"?><r>'
            + b"\x92" * (MAX_TEXT_CHARS + 1)
            + b"</r>",
            "payload_too_large",
        ),
        (
            b'<?xml version="1.0" encoding="ISO-8859-1"?><r>'
            + b"\x92" * MAX_DOCUMENT_BYTES
            + b"</r>",
            "payload_too_large",
        ),
    ],
    ids=["DOCTYPE", "depth", "text length", "size"],
)
def test_a_transcoded_document_keeps_every_limit(data: bytes, code: str) -> None:
    assert _refused(parse_xml, data).code == code


def test_each_xml_adapter_reads_windows_1252_labelled_iso_8859_1_and_says_so() -> None:
    latin = ECAF.replace(b'encoding="UTF-8"', b'encoding="ISO-8859-1"', 1)
    latin = (
        latin.decode()
        .replace("Zoë Costa", "Zoë O’Brien – “Nan”")
        .encode("cp1252", "xmlcharrefreplace")
    )
    ecaf = get_adapter("ecaf-xml-v3")
    translation = ecaf.to_national(latin)
    (episode,) = translation.episodes
    assert episode.parents_carers[0].name == "Zoë O’Brien – “Nan”"
    assert [w.rule for w in translation.warnings] == [READ_AS_WINDOWS_1252]
    assert "Zoë O’Brien – “Nan”".encode() in ecaf.from_national([episode])  # written as UTF-8
    national = get_adapter("national-xml")
    as_national = national.from_national([episode]).decode()
    relabelled = as_national.replace("encoding='UTF-8'", "encoding='ISO-8859-1'", 1)
    assert relabelled != as_national
    again = national.to_national(relabelled.encode("cp1252", "xmlcharrefreplace"))
    assert again.episodes[0].parents_carers[0].name == "Zoë O’Brien – “Nan”"
    assert [w.rule for w in again.warnings] == [READ_AS_WINDOWS_1252]
    csc = (EXAMPLES / "csc-closure-xml" / "csc-closure-xml-101-0.xml").read_bytes()
    assert b'encoding="UTF-8"' in csc and b"Adeyemi" in csc
    csc = csc.replace(b'encoding="UTF-8"', b'encoding="ISO-8859-1"', 1)
    csc = csc.decode().replace("Adeyemi", "O’Adeyemi").encode("cp1252", "xmlcharrefreplace")
    closing = get_adapter("csc-closure-xml").to_national(csc)
    assert "O’Adeyemi" in closing.episodes[0].child.family_name
    assert [w.rule for w in closing.warnings][:1] == [READ_AS_WINDOWS_1252]
