"""Hardened parsing, shared by every adapter: one lxml configuration, and JSON / CSV with limits.

XML: entities are never resolved, nothing is fetched (no network, no DTD loading), XInclude is never
processed and a document that uses it is refused, any DOCTYPE is refused (that closes entity expansion
attacks, "billion laughs" and quadratic blow-up, before they start), and size, depth and text length are
bounded. Errors carry a stable code and a location, never the document's content.

Encodings: a document declared ISO-8859-1 (latin1, ...) or US-ASCII is read as windows-1252, as the
WHATWG Encoding Standard reads those labels: Windows exports say ISO-8859-1 and mean windows-1252, and
read as declared their `’ “ ” – €` (bytes 0x80 to 0x9F) would silently become C1 control characters.
The bytes are transcoded to UTF-8 (and the declaration with them) before lxml sees them, and only when
they hold a byte that reads differently; the caller is told (`notes`). A document declared a one-byte
encoding whose bytes are UTF-8 is refused, never guessed at.
"""

from __future__ import annotations

import codecs
import json
import math
import re
import threading
from typing import Any, Final

from lxml import etree

from schemas import Problem

from ._base import AdapterError, ErrorCode

__all__ = [
    "CONTROL_CHARACTERS",
    "MAX_DEPTH",
    "MAX_DOCUMENT_BYTES",
    "MAX_TEXT_CHARS",
    "READ_AS_WINDOWS_1252",
    "XML_SNIFF_BYTES",
    "check_size",
    "decode_text",
    "json_text_problems",
    "json_member",
    "json_top",
    "parse_json",
    "parse_xml",
    "xml_root_is",
]

MAX_DOCUMENT_BYTES = 4 * 1024 * 1024
MAX_TEXT_CHARS = 256 * 1024
MAX_DEPTH = 32
XINCLUDE_NAMESPACES = ("http://www.w3.org/2001/XInclude", "http://www.w3.org/2003/XInclude")

_local = threading.local()  # lxml parser objects must not be shared between threads


def _parser() -> etree.XMLParser:
    parser: etree.XMLParser | None = getattr(_local, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            attribute_defaults=False,
            huge_tree=False,
            # Not collect_ids=False: lxml then sets XML_SKIP_IDS, and libxml2 loads the external
            # DTD subset from local files despite load_dtd=False (a file-existence oracle).
            remove_pis=True,
        )
        _local.parser = parser
    return parser


# One XPath each, compiled once: is anything too deep, too long, or an XInclude?
_TOO_DEEP = etree.XPath("boolean(/" + "/*" * (MAX_DEPTH + 1) + ")")
_TOO_LONG = etree.XPath(
    "boolean(//text()[string-length() > $limit] | //@*[string-length() > $limit])"
)
_XINCLUDE_TAGS = tuple(f"{{{ns}}}*" for ns in XINCLUDE_NAMESPACES)
MAX_ATTRIBUTES = 256  # per element: lxml's items() and attrib are quadratic in their number
# In a document: each element kept whole carries every declaration in scope, so thousands of them
# would multiply what a small document keeps (and the time to serialise it). Real exports have two.
MAX_NAMESPACE_DECLARATIONS = 64
_TOO_MANY_ATTRIBUTES = etree.XPath("boolean(//*[count(@*) > $limit])")
# A DOCTYPE in any encoding libxml2 reads: whatever it trips on first, a DTD is what we refuse.
_DOCTYPE = tuple(
    "<!DOCTYPE".encode(e) for e in ("utf-8", "utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be")
)
_WIDE_DECLARED = re.compile(
    rb"""^(?:\xef\xbb\xbf)?<\?xml[^>]{0,200}?encoding\s*=\s*["'](?:utf-?16|utf-?32|ucs-?[24])""",
    re.IGNORECASE,
)


def check_size(data: bytes, limit: int = MAX_DOCUMENT_BYTES) -> None:
    if len(data) > limit:
        raise AdapterError(
            "payload_too_large", f"document is {len(data)} bytes; the limit is {limit} bytes"
        )


# libxml2 errors that mean "these bytes are not text in the declared encoding".
_ENCODING_ERRORS = frozenset(
    {
        etree.ErrorTypes.ERR_UNKNOWN_ENCODING,
        etree.ErrorTypes.ERR_UNSUPPORTED_ENCODING,
        etree.ErrorTypes.ERR_ENCODING_NAME,
        etree.ErrorTypes.ERR_INVALID_ENCODING,
        etree.ErrorTypes.ERR_MISSING_ENCODING,
    }
)
# One-byte encodings: any UTF-8 sequence is also valid text in them, so a mislabelled document
# parses without an error.
_ONE_BYTE_DECLARED = re.compile(
    rb"""^(?:\xef\xbb\xbf)?<\?xml[^>]{0,200}?encoding\s*=\s*["']"""
    rb"""(?:iso[-_]?8859[-_]?[0-9]{1,2}|latin-?[0-9]|l[0-9]|(?:windows|cp)-?12[0-9]{2}"""
    rb"""|(?:us-)?ascii)["']""",
    re.IGNORECASE,
)
_UTF8_MULTIBYTE = re.compile(rb"[\xc2-\xf4][\x80-\xbf]+")

# The labels the WHATWG Encoding Standard reads as windows-1252, bar windows-1252's own (which
# libxml2 reads so already): ISO-8859-1 and US-ASCII by their names. No BOM: a UTF-8 BOM says UTF-8,
# whatever the declaration says, and libxml2 reads it so. Group 1 is the label.
_WINDOWS_1252_LABELLED = re.compile(
    rb"""^<\?xml[^>]{0,200}?encoding\s*=\s*["']("""
    rb"""iso[-_ ]?8859[-_]?1(?::1987)?|iso[-_ ]?latin[-_ ]?1|latin-?1|l1|cp819|ibm819|iso-ir-100"""
    rb"""|csisolatin1|(?:us-)?ascii|csascii|ansi_x3\.4-1968|iso646-us)["']""",
    re.IGNORECASE,
)
_ASCII_LABEL = re.compile(rb"(?:us-)?ascii|csascii|ansi_x3\.4-1968|iso646-us", re.IGNORECASE)
_C1_BYTES = re.compile(rb"[\x80-\x9f]")  # where windows-1252 and ISO-8859-1 differ
# windows-1252 as WHATWG decodes it: its five unassigned bytes (0x81 0x8D 0x8F 0x90 0x9D) are the
# C1 characters of the same number, so every byte decodes (Python's cp1252 codec refuses them).
_WINDOWS_1252: Final = "".join(
    bytes([b]).decode("cp1252", errors="ignore") or chr(b) for b in range(256)
)
READ_AS_WINDOWS_1252: Final = "encoding.read_as_windows_1252"
_READ_AS_WINDOWS_1252: Final = Problem(
    (),
    READ_AS_WINDOWS_1252,
    "declared ISO-8859-1 or US-ASCII, read as windows-1252 (WHATWG Encoding Standard): bytes 0x80"
    " to 0x9F are its characters (quotes, dashes, euro sign), not control characters",
    "warning",
    "line 1",
)


def _as_windows_1252(data: bytes) -> bytes | None:
    """A document declared ISO-8859-1 or US-ASCII, transcoded to UTF-8 as windows-1252 (its
    declaration now saying UTF-8); None when it needs no transcoding: another label, or no byte
    that windows-1252 reads otherwise than libxml2 would (0x80 to 0x9F; any non-ASCII byte under
    an ASCII label). Only the declaration is matched before that: no cost to other documents."""
    label = _WINDOWS_1252_LABELLED.match(data)
    if label is None:
        return None
    if _ASCII_LABEL.fullmatch(label[1]):
        if data.isascii():
            return None
    elif _C1_BYTES.search(data) is None:
        return None
    text = codecs.charmap_decode(data, "strict", _WINDOWS_1252)[0]
    start, end = label.span(1)  # one byte, one character: the same span in the text
    return (text[:start] + "UTF-8" + text[end:]).encode("utf-8")


def _utf8_posing_as_one_byte(data: bytes) -> bool:
    """A document declared ISO-8859-1 (or windows-1252, ...) whose non-ASCII bytes are all
    well-formed UTF-8 was written as UTF-8 and mislabelled: read as declared it would silently
    become mojibake ("ZoÃ«")."""
    if data.isascii() or not _ONE_BYTE_DECLARED.match(data):
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return _UTF8_MULTIBYTE.search(data) is not None


def _namespace_declarations(root: etree._Element) -> int:
    """Declarations made in the document (not in scope: an element's nsmap counts its parents')."""
    total = 0
    for el in root.iter():
        parent = el.getparent()
        inherited = parent.nsmap if parent is not None else {}
        total += sum(1 for prefix, uri in el.nsmap.items() if inherited.get(prefix) != uri)
        if total > MAX_NAMESPACE_DECLARATIONS:
            break
    return total


def parse_xml(data: bytes, notes: list[Problem] | None = None) -> etree._Element:
    """Parse untrusted XML safely, or raise `AdapterError`. `notes`, when given, receives a
    warning about the document as a whole: read as windows-1252 though declared otherwise."""
    check_size(data)
    if _WIDE_DECLARED.match(data):  # declared UTF-16 / UTF-32, yet written in one-byte characters
        raise AdapterError(
            "unsupported_format", "the declared encoding is not the document's", "line 1"
        )
    if _utf8_posing_as_one_byte(data):
        raise AdapterError(
            "unsupported_format", "declared a one-byte encoding, but the bytes are UTF-8", "line 1"
        )
    # At most three UTF-8 bytes a byte: the size checked above bounds what is parsed.
    transcoded = _as_windows_1252(data)
    if transcoded is not None:
        data = transcoded
        if notes is not None:
            notes.append(_READ_AS_WINDOWS_1252)
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        if any(mark in data for mark in _DOCTYPE):
            raise AdapterError(
                "unsupported_format", "a DOCTYPE (DTD) is not allowed", "/"
            ) from None
        line, column = exc.position
        code: ErrorCode = (
            "unsupported_format" if exc.code in _ENCODING_ERRORS else "schema_violation"
        )
        # libxml2 messages can quote names from the document, so only its error number is kept.
        raise AdapterError(
            code,
            f"not well-formed XML (libxml2 error {exc.code})",
            f"line {line}, column {column}",
        ) from None
    except ValueError:  # e.g. a str with an encoding declaration, or an unknown encoding
        raise AdapterError("unsupported_format", "document encoding cannot be read") from None
    if root.getroottree().docinfo.doctype:
        raise AdapterError("unsupported_format", "a DOCTYPE (DTD) is not allowed", "/")
    if _TOO_DEEP(root):
        raise AdapterError("schema_violation", f"elements nest more than {MAX_DEPTH} deep")
    # Both checks below cost an XPath walk; skip them when the bytes alone rule the fault out.
    if len(data) > MAX_TEXT_CHARS and _TOO_LONG(root, limit=MAX_TEXT_CHARS):
        raise AdapterError(
            "payload_too_large", f"a text or attribute is longer than {MAX_TEXT_CHARS} characters"
        )
    # By tag, not by bytes: the namespace can be written with character references.
    if next(root.iter(*_XINCLUDE_TAGS), None) is not None:
        raise AdapterError("unsupported_format", "XInclude is not allowed")
    if data.count(b"xmlns") > MAX_NAMESPACE_DECLARATIONS and _namespace_declarations(root) > (
        MAX_NAMESPACE_DECLARATIONS
    ):
        raise AdapterError(
            "payload_too_large",
            f"more than {MAX_NAMESPACE_DECLARATIONS} namespace declarations",
        )
    if data.count(b"=") > MAX_ATTRIBUTES and _TOO_MANY_ATTRIBUTES(root, limit=MAX_ATTRIBUTES):
        raise AdapterError(
            "payload_too_large", f"an element has more than {MAX_ATTRIBUTES} attributes"
        )
    return root


def decode_text(data: bytes) -> str:
    """UTF-8 text (a BOM is allowed), or `AdapterError`."""
    check_size(data)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise AdapterError(
            "unsupported_format", "document is not valid UTF-8", f"byte {exc.start}"
        ) from None


def _reject_constant(name: str) -> Any:
    raise AdapterError("schema_violation", f"{name} is not a JSON number")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise AdapterError("schema_violation", "an object repeats a key")
    return result


# On the raw bytes (already checked to be UTF-8): no multi-byte character holds an ASCII byte, so
# what is left of a document once everything but quotes and brackets is deleted is the same as for
# its text, and bytes.translate deletes in one C pass (a str regex costs tens of microseconds).
_ESCAPE = re.compile(rb"\\.", re.DOTALL)  # a backslash and the byte it escapes
_NOT_QUOTE_OR_BRACKET = bytes(b for b in range(256) if b not in b'"[]{}')
_STRING = re.compile(rb'"[^"]*"')  # once escapes are gone, a string has no quote inside
_OPENING = frozenset(b"[{")
# A UTF-16 surrogate escape not in a high+low pair: json.loads accepts it, UTF-8 cannot hold it.
_LONE_SURROGATE = re.compile(
    r"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    r"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)
# Any surrogate escape at all: a cheap first look, since the pattern above tries its lookbehind at
# every position (tens of microseconds on an ordinary document).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _nesting(data: bytes) -> int:
    """How deep objects and arrays nest, found on the brackets alone (strings removed first),
    before parsing: cheap, and it stops hostile nesting before the parser recurses into it."""
    if b"\\" in data:
        data = _ESCAPE.sub(b"", data)
    kept = data.translate(None, _NOT_QUOTE_OR_BRACKET)
    if kept.count(b'"') % 2 == 0:
        # Every string is closed, so two quotes side by side are an empty string, or the end of
        # one and the start of the next: taking them out first (in C) leaves the same after the
        # regex below, which then has a few strings to remove rather than every key and value.
        kept = kept.replace(b'""', b"")
    deepest = depth = 0
    for bracket in _STRING.sub(b"", kept):
        if bracket in _OPENING:
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def parse_json(data: bytes) -> Any:
    """Parse untrusted JSON: UTF-8, size and depth bounded, no NaN, no repeated keys. What breaks
    those rules is located by its JSON pointer (`_located`)."""
    text = decode_text(data)
    if _nesting(data) > MAX_DEPTH:
        raise AdapterError("schema_violation", f"values nest more than {MAX_DEPTH} deep")
    # An escaped backslash (`\\`) is a character, not the start of an escape: taken out first, so
    # a text that reads `\ud800` literally is not taken for a surrogate.
    if _SURROGATE_ESCAPE.search(text) and _LONE_SURROGATE.search(text.replace("\\\\", "")):
        raise _located(text, "a string holds a lone UTF-16 surrogate")
    try:
        value = json.loads(
            text,
            parse_constant=_reject_constant,
            parse_float=finite_float,
            object_pairs_hook=_unique_keys,
        )
    except json.JSONDecodeError as exc:
        raise AdapterError(
            "schema_violation",
            f"not valid JSON ({exc.msg})",
            f"line {exc.lineno}, column {exc.colno}",
        ) from None
    except AdapterError as exc:  # a rule of ours, from a hook: `_located` finds where
        raise _located(text, exc.message) from None
    except ValueError:  # an integer longer than Python converts (sys.get_int_max_str_digits)
        raise AdapterError("schema_violation", "a number has too many digits") from None
    return value


class _Fault:
    """What the locating pass reads in place of a value that breaks a rule of `parse_json`: which
    rule, as `parse_json` words it."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


_REPEATED: Final = _Fault("an object repeats a key")
_OUT_OF_RANGE: Final = _Fault("a number is out of range")
_SURROGATE: Final = _Fault("a string holds a lone UTF-16 surrogate")


def _fault_unless_unique(pairs: list[tuple[str, Any]]) -> Any:
    result = dict(pairs)
    return result if len(result) == len(pairs) else _REPEATED


def _fault_unless_finite(text: str) -> Any:
    number = float(text)
    return number if math.isfinite(number) else _OUT_OF_RANGE


def _located(text: str, message: str) -> AdapterError:
    """The document is well-formed JSON that breaks a rule of ours (a repeated key, NaN, a number
    out of range, a lone surrogate): read it again with each breach kept as a marker, and name the
    first one's JSON pointer (an object repeating a key, or holding a surrogate in a member name,
    at the object's). Only on this failing path, so valid documents pay nothing for it."""
    try:
        marked = json.loads(
            text,
            parse_constant=lambda name: _Fault(f"{name} is not a JSON number"),
            parse_float=_fault_unless_finite,
            object_pairs_hook=_fault_unless_unique,
        )
    except ValueError:  # not JSON, or an integer too long to convert: said elsewhere, or unplaced
        return AdapterError("schema_violation", message)
    found = _first_fault(marked, ())
    if found is None:
        return AdapterError("schema_violation", message)
    path, fault = found
    return AdapterError("schema_violation", fault.message, Problem(path, "", "").pointer)


_Found = tuple[tuple[str | int, ...], _Fault]


def _first_fault(value: Any, path: tuple[str | int, ...]) -> _Found | None:
    """The first breach in document order, with its place and its rule."""
    if isinstance(value, _Fault):
        return path, value
    if isinstance(value, str) and _has_surrogate(value):
        return path, _SURROGATE
    if isinstance(value, dict):
        if any(_has_surrogate(key) for key in value):
            return path, _SURROGATE
        for key, member in value.items():
            if (found := _first_fault(member, (*path, key))) is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if (found := _first_fault(item, (*path, index))) is not None:
                return found
    return None


def _has_surrogate(text: str) -> bool:
    return any("\ud800" <= c <= "\udfff" for c in text)


# What a JSON text may not hold, because the node could not write it out again: a text it reads
# must also be a text it can write as national XML, eCAF or a register, and read back.
# - Control characters: C0 but tab, LF and CR, which XML 1.0 cannot hold, and DEL, which the
#   register refuses (its rule, `text.control_character`). `json.loads` refuses them raw in a
#   string, bar DEL; escaped (`\u0001`, `\b`, `\f`) it takes them.
# - The noncharacters U+FFFE and U+FFFF, which XML 1.0 cannot hold either.
# - More than `MAX_TEXT_CHARS` characters, the most an XML text (or a register cell) may hold.
CONTROL_CHARACTERS: Final = "text.control_characters"
NONCHARACTERS: Final = "text.noncharacter"
TOO_LONG: Final = "text.too_long"
_CONTROL_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_NONCHARACTER_TEXT = re.compile("[\ufffe\uffff]")
# A first look over the bytes, each regex with a literal first byte so that the engine skips to it
# in C (a backslash for escapes, 0xEF for U+FFFE and U+FFFF as UTF-8): a few microseconds a
# document. It may find what is no such character (`\\b`, `\u0009`): only then are the parsed
# values walked, and they decide.
_SUSPECT_ESCAPE = re.compile(rb"\\(?:[bf]|u00(?:[01][0-9a-fA-F]|7[fF])|u[fF]{3}[eEfF])")
_SUSPECT_NONCHARACTER = re.compile(rb"\xef\xbf[\xbe\xbf]")


def json_text_problems(data: bytes, value: Any) -> list[Problem]:
    """Every string of `value` (parsed from `data` by `parse_json`) the node could not write out
    again: a control character (`CONTROL_CHARACTERS`), U+FFFE or U+FFFF (`NONCHARACTERS`), or
    more than `MAX_TEXT_CHARS` characters (`TOO_LONG`). Each is located at its JSON pointer (a
    member name at its object's), the value never quoted. Not part of `parse_json`: such a
    document is well-formed JSON (detected, and rejected by its format's rules rather than
    unusable). The values are walked only when the bytes could hold one."""
    if (
        len(data) <= MAX_TEXT_CHARS  # no text in it can be longer
        and b"\x7f" not in data
        and _SUSPECT_ESCAPE.search(data) is None
        and _SUSPECT_NONCHARACTER.search(data) is None
    ):
        return []
    found: list[Problem] = []
    _find_text_problems(value, (), found)
    return found


def _text_problem(text: str) -> tuple[str, str] | None:
    """(rule, what) of what is wrong with `text`, or None."""
    if _CONTROL_TEXT.search(text):
        return CONTROL_CHARACTERS, "a control character"
    if _NONCHARACTER_TEXT.search(text):
        return NONCHARACTERS, "U+FFFE or U+FFFF"
    if len(text) > MAX_TEXT_CHARS:
        return TOO_LONG, f"more than {MAX_TEXT_CHARS} characters"
    return None


def _find_text_problems(value: Any, path: tuple[str | int, ...], found: list[Problem]) -> None:
    if isinstance(value, str):
        if problem := _text_problem(value):
            found.append(Problem(path, problem[0], f"a text holds {problem[1]}"))
    elif isinstance(value, dict):
        for key, member in value.items():
            if problem := _text_problem(key):  # not in the pointer: reported at its object
                found.append(Problem(path, problem[0], f"a member name holds {problem[1]}"))
            else:
                _find_text_problems(member, (*path, key), found)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _find_text_problems(item, (*path, index), found)


def finite_float(text: str) -> float:
    """A JSON number with a fraction or exponent, refused when it is out of range (1e999): JSON
    cannot carry infinity, and what is written back must be JSON."""
    number = float(text)
    if not math.isfinite(number):
        raise AdapterError("schema_violation", "a number is out of range")
    return number


# -- detection --------------------------------------------------------------------------------------

# How far detection looks for the root element: past an XML declaration, a licence or export
# comment, processing instructions and whitespace. Bounded, so a sniff stays cheap on any input.
XML_SNIFF_BYTES = 64 * 1024
_START_TAG = re.compile(rb"<(?:([A-Za-z_][\w.\-]*):)?([A-Za-z_][\w.\-]*)([^<>]*)>")
_NAMESPACE_DECLARATION = re.compile(rb"xmlns(?::([A-Za-z_][\w.\-]*))?\s*=\s*([\"'])(.*?)\2")


def _root_start(head: bytes) -> re.Match[bytes] | None:
    """The root element's start tag: the first tag after the XML declaration, comments, PIs, DOCTYPE."""
    pos = 0
    while True:
        i = head.find(b"<", pos)
        if i < 0:
            return None
        if head.startswith(b"<?", i):
            end = head.find(b"?>", i)
        elif head.startswith(b"<!--", i):
            end = head.find(b"-->", i)
        elif head.startswith(b"<!", i):
            end = head.find(b">", i)
        else:
            return _START_TAG.match(head, i)
        if end < 0:
            return None
        pos = end + 1


def xml_root_is(data: bytes, namespace: str, local_name: str) -> bool:
    """Detection: is the root element `local_name` in `namespace`? Reads the first 64 KB only
    (`XML_SNIFF_BYTES`: the root must start within them, after whatever comments and PIs come
    first), and only the root's start tag, so a namespace named in a comment or a text says
    nothing. Never raises."""
    try:
        head = data[:XML_SNIFF_BYTES]
        if head.startswith((b"\xff\xfe", b"\xfe\xff")):
            head = head.decode("utf-16", "ignore").encode("utf-8")
        start = _root_start(head)
        if start is None or start[2] != local_name.encode():
            return False
        # The root's own namespace can only be declared on the root itself.
        wanted = namespace.encode()
        return any(
            d[1] == start[1] and d[3] == wanted for d in _NAMESPACE_DECLARATION.finditer(start[3])
        )
    except Exception:  # a sniff never raises  # noqa: BLE001
        return False


def json_top(data: bytes) -> dict[str, Any] | None:
    """Detection: the document's top-level object (its first item, for an array), or None: not
    JSON, over `MAX_DOCUMENT_BYTES`, not an object. By parsing (bounded, as `parse_json`), so
    neither a member at another depth nor a mention in a text counts, and key order does not
    matter. Never raises."""
    try:
        value = parse_json(data)
        if isinstance(value, list):
            value = value[0] if value else None
        return value if isinstance(value, dict) else None
    except Exception:  # a sniff never raises  # noqa: BLE001
        return None


def json_member(data: bytes, key: str) -> Any:
    """Detection: the value of `key` in the document's top-level object (`json_top`), or None:
    not JSON, over `MAX_DOCUMENT_BYTES`, no such member. Never raises."""
    top = json_top(data)
    return None if top is None else top.get(key)
