"""The reading machinery: one pass over an element's children, the fidelity report, kept content.

`Walk` owns what one translation collects: report entries, warnings, and the content kept for
`extensions` (unknown elements as XML, unknown attributes, text standing directly in a container).
`Walk.children` reads a container in a single pass, dispatching on the child's full tag: leaves through
a `Leaf` spec (converter, national key, rule), nested elements through a `Nested` handler, anything
else kept. `Walk.item` reads one list entry (a review, a TAC member) and, if it cannot be used, marks
every field of it rejected and carries on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple, TypeVar

from lxml import etree
from pydantic import BaseModel, JsonValue, ValidationError

from schemas import Problem, problems_from

from .._base import AdapterError, Fate, FieldReport
from .._safe import XINCLUDE_NAMESPACES
from ._convert import Bad, Converted, Converter, leaf_text
from ._paths import FORMAT, RECOGNISED_ATTRIBUTES, REPEATABLE, local_name, step

__all__ = ["EXTENSION_TARGET", "Invalid", "Leaf", "Nested", "Shape", "Walk"]

EXTENSION_TARGET: Final = f"extensions.{FORMAT}"
# Unknown content is kept in extensions, stored and sent on: a real export has a handful of such
# elements, so a document with more than this is refused rather than stored.
MAX_KEPT: Final = 1_000
_XINCLUDE_TAGS: Final = tuple(f"{{{ns}}}*" for ns in XINCLUDE_NAMESPACES)
M = TypeVar("M", bound=BaseModel)


class Invalid(Exception):
    """A value the national model cannot do without is unusable: its item (or document) is rejected."""

    def __init__(self, location: str, rule: str, message: str) -> None:
        super().__init__(message)
        self.location = location
        self.rule = rule
        self.message = message


class Leaf(NamedTuple):
    name: str  # local name, for locations
    key: str  # national field in the parent's dict
    convert: Converter
    rule: str | None = None  # None: mapped unchanged; else transformed by this rule
    required: bool = False  # a bad value rejects the item (or the document)
    rule_if_changed: bool = False  # the rule applies only when the value was changed


@dataclass(frozen=True, slots=True)
class Shape:
    """What an element holds: attributes read as leaves, child leaves, nested elements. `start` and
    `finish` prepare and complete its data; `strict` makes it all or nothing (a consent)."""

    name: str
    attributes: tuple[Leaf, ...] = ()
    leaves: dict[str, Leaf] = field(default_factory=dict)
    nested: dict[str, Nested] | None = None
    start: Callable[[dict[str, Any]], None] | None = None
    finish: Callable[[Walk, dict[str, Any], str], None] | None = None
    strict: bool = False
    known: frozenset[str] = frozenset()  # attributes it reads

    def __post_init__(self) -> None:
        object.__setattr__(self, "known", RECOGNISED_ATTRIBUTES.get(self.name, frozenset()))


@dataclass(frozen=True, slots=True)
class Nested:
    """A child element read by `handler(walk, element, location, written_path, data, target_prefix)`,
    which returns the step the writer will write it under (an anchor for kept content), or None."""

    name: str
    handler: Callable[[Walk, etree._Element, str, str, dict[str, Any], str], str | None]
    repeatable: bool = False


# FieldReports are immutable, so the common ones are shared between translations: building a frozen
# dataclass costs far more than a dict look-up. Bounded, so odd documents cannot grow it for ever.
_REPORTS: dict[tuple[str, Fate, str | None, str | None], FieldReport] = {}
_REPORTS_MAX: Final = 20_000


def _report(location: str, fate: Fate, target: str | None, rule: str | None) -> FieldReport:
    key = (location, fate, target, rule)
    entry = _REPORTS.get(key)
    if entry is None:
        entry = FieldReport(location, fate, target, rule)
        if len(_REPORTS) < _REPORTS_MAX:
            _REPORTS[key] = entry
    return entry


_FAST: dict[tuple[str, str, str, str | None, bool], FieldReport] = {}


def _fast(
    parent: str, tpre: str, key: str, rule: str | None, attribute: bool, location: str
) -> FieldReport:
    """A report entry for the fast path, keyed on (parent location, target prefix, key, rule)."""
    entry = _report(location, Fate.MAPPED if rule is None else Fate.TRANSFORMED, tpre + key, rule)
    if len(_FAST) < _REPORTS_MAX:
        _FAST[(parent, tpre, key, rule, attribute)] = entry
    return entry


def _national_path(target: str | None) -> tuple[str | int, ...]:
    """`assessments[0].elements[2].needs` -> ("assessments", 0, "elements", 2, "needs")."""
    if not target:
        return ()
    path: list[str | int] = []
    for part in target.split("."):
        name, _, rest = part.partition("[")
        path.append(name)
        for index in rest.split("[") if rest else ():
            path.append(int(index.rstrip("]")))
    return tuple(path)


class Walk:
    __slots__ = (
        "attributes",
        "careful",
        "elements",
        "fields",
        "rejections",
        "state",
        "strict",
        "texts",
        "warnings",
    )

    def __init__(self, state: object, careful: bool) -> None:
        # Careful: validate each list entry on its own, so one that fails is rejected alone. The
        # reader first walks without (one validation of the whole episode is much faster), and
        # walks again carefully only when that validation fails.
        self.careful = careful
        self.state = state  # the episode state, if it could be read
        self.fields: list[FieldReport] = []
        self.warnings: list[Problem] = []
        self.elements: list[dict[str, JsonValue]] = []  # unknown elements, kept
        self.attributes: list[dict[str, JsonValue]] = []  # unknown attributes, kept
        self.texts: list[dict[str, JsonValue]] = []  # text directly in a container, kept
        self.strict: str | None = None  # inside a consent: nothing may be kept or rejected alone
        self.rejections = 0  # values and items rejected so far: what was, is kept (see `children`)

    # -- the report ------------------------------------------------------------------------------

    def extended(self, location: str, rule: str) -> None:
        self.fields.append(_report(location, Fate.EXTENDED, EXTENSION_TARGET, rule))

    def ok(self, location: str, target: str, rule: str | None = None) -> None:
        fate = Fate.MAPPED if rule is None else Fate.TRANSFORMED
        self.fields.append(_report(location, fate, target, rule))

    def reject(self, location: str, target: str | None, rule: str, message: str) -> None:
        if self.strict is not None:
            raise Invalid(location, rule, message)
        self.rejections += 1
        self.fields.append(FieldReport(location, Fate.REJECTED, target, rule, message))
        self.warnings.append(
            Problem(_national_path(target), rule, f"{location}: {message}", "warning")
        )

    # -- kept content -----------------------------------------------------------------------------

    def keep(
        self,
        el: etree._Element,
        location: str,
        written_parent: str,
        after: str | None,
        rejected: bool = False,
    ) -> None:
        """An element this adapter does not know, or one it rejected: kept whole, to be written back
        where it was. Rejected content is marked so, as the writer must tell it from unknown content
        (it may have a known name) and the report already says what became of it."""
        if self.strict is not None:
            raise Invalid(location, "ecaf.consent_not_understood", _NOT_UNDERSTOOD)
        if next(el.iter(*_XINCLUDE_TAGS), None) is not None:
            # parse_xml should have refused it; kept content is written back to other systems.
            raise AdapterError("unsupported_format", "XInclude is not allowed", location)
        if len(self.elements) + len(self.attributes) >= MAX_KEPT:
            raise AdapterError("payload_too_large", _TOO_MUCH_KEPT, location)
        entry: dict[str, JsonValue] = {
            "parent": written_parent,
            "after": after,
            "xml": etree.tostring(el, encoding="unicode", with_tail=False),
            "values": _values(el, location),
        }
        if rejected:
            entry["rejected"] = True
            self.elements.append(entry)
            return
        self.elements.append(entry)
        self.fields.append(
            _report(location, Fate.EXTENDED, EXTENSION_TARGET, "ecaf.unknown_element")
        )

    def stray(self, text: str, location: str, written: str, after: str | None) -> None:
        """Text standing directly in a container (before, between or after its elements; mixed
        content eCAF does not write): no national home, so kept as written, to go back after the
        element it followed (`after`, a written step; None: first in the container). Runs in one
        place, split by a comment or an unknown element, are joined: written back, they are one."""
        where = f"{location}/text()"
        if self.strict is not None:
            raise Invalid(where, "ecaf.consent_not_understood", _NOT_UNDERSTOOD)
        last = self.texts[-1] if self.texts else None
        if last is not None and last["parent"] == written and last["after"] == after:
            last["text"] = f"{last['text']}{text}"
            return
        if len(self.texts) >= MAX_KEPT:
            raise AdapterError("payload_too_large", _TOO_MUCH_KEPT, where)
        self.texts.append({"parent": written, "after": after, "text": text})
        self.fields.append(_report(where, Fate.EXTENDED, EXTENSION_TARGET, "ecaf.stray_text"))

    def check_attributes(self, el: etree._Element, location: str, written: str, name: str) -> None:
        """Keep the attributes of `el` that the adapter does not read."""
        known = RECOGNISED_ATTRIBUTES.get(name, frozenset())
        keys = el.keys()
        if known.issuperset(keys):
            return
        if len(keys) > MAX_KEPT:  # and never el.items(): lxml makes that quadratic in their number
            raise AdapterError("payload_too_large", _TOO_MUCH_KEPT, location)
        for attribute in keys:
            if attribute in known:
                continue
            value = el.get(attribute)
            where = f"{location}/@{local_name(attribute)}"
            if self.strict is not None:
                raise Invalid(where, "ecaf.consent_not_understood", _NOT_UNDERSTOOD)
            if len(self.elements) + len(self.attributes) >= MAX_KEPT:
                raise AdapterError("payload_too_large", _TOO_MUCH_KEPT, where)
            self.attributes.append({"element": written, "name": attribute, "value": value})
            self.fields.append(
                _report(where, Fate.EXTENDED, EXTENSION_TARGET, "ecaf.unknown_attribute")
            )

    # -- reading ----------------------------------------------------------------------------------
    # `children` and `attribute` have a fast path for the common case (a plain value, first of its
    # kind, that converts): no intermediate calls, and the report entry found by a look-up keyed on
    # strings the walk already holds. Anything else takes the general path, `value`.

    def value(
        self, leaf: Leaf, text: str | None, location: str, data: dict[str, Any], tpre: str
    ) -> bool:
        """Convert one leaf into `data[leaf.key]`; True when it holds a value the writer writes back."""
        key = leaf.key
        if key in data:
            self.reject(
                location, tpre + key, "ecaf.repeated", "given more than once; the first is used"
            )
            return False
        rule = leaf.rule
        try:
            value = leaf.convert(text)
        except Converted as converted:  # a value, changed by a rule of its own (a time zone)
            value, rule = converted.value, converted.rule
        except Bad as bad:
            if leaf.required:
                raise Invalid(location, bad.rule, bad.message) from None
            self.reject(location, tpre + key, bad.rule, bad.message)
            return False
        if value is None:
            if leaf.required:
                raise Invalid(location, "missing", "a value is required")
            self.ok(location, tpre + key, "ecaf.empty_is_absent")
            return False
        data[key] = value
        if leaf.rule_if_changed and text is not None and value == text:
            rule = None
        self.ok(location, tpre + key, rule)
        return True

    def attribute(
        self, el: etree._Element, leaf: Leaf, location: str, data: dict[str, Any], tpre: str
    ) -> None:
        text = el.get(leaf.name)
        if text is None:
            if leaf.required:
                raise Invalid(f"{location}/@{leaf.name}", "missing", "a value is required")
            return
        key = leaf.key
        try:
            value = leaf.convert(text)
        except Bad:
            value = None
        if value is not None and key not in data:
            data[key] = value
            rule = leaf.rule
            if leaf.rule_if_changed and value == text:
                rule = None
            entry = _FAST.get((location, tpre, key, rule, True))
            if entry is None:
                entry = _fast(location, tpre, key, rule, True, f"{location}/@{leaf.name}")
            self.fields.append(entry)
            return
        self.value(leaf, text, f"{location}/@{leaf.name}", data, tpre)

    def children(
        self,
        el: etree._Element,
        location: str,
        written: str,
        data: dict[str, Any],
        tpre: str,
        leaves: dict[str, Leaf],
        nested: dict[str, Nested] | None = None,
    ) -> None:
        """Read the children of a container in one pass (and the text between them: layout, or
        stray text to keep)."""
        append = self.fields.append
        after: str | None = None
        counts: dict[str, int] | None = None
        between = el.text  # before the first child; then each child's tail, before the next
        for child in el:
            if between is not None and not between.isspace():
                self.stray(between, location, written, after)
            between = child.tail
            name_tag = child.tag
            if name_tag.__class__ is not str:  # a comment
                continue
            leaf = leaves.get(name_tag)
            if leaf is not None:
                key = leaf.key
                if not (child.keys() or len(child) or key in data):
                    text = child.text
                    try:
                        value = leaf.convert(text)
                    except Bad:
                        value = None
                    if value is not None:
                        data[key] = value
                        rule = leaf.rule
                        if leaf.rule_if_changed and value == text:
                            rule = None
                        entry = _FAST.get((location, tpre, key, rule, False))
                        if entry is None:
                            entry = _fast(
                                location, tpre, key, rule, False, f"{location}/{leaf.name}"
                            )
                        append(entry)
                        after = leaf.name
                        continue
                rejections = self.rejections
                if self._leaf(child, leaf, location, written, data, tpre):
                    after = leaf.name
                elif self.rejections != rejections:  # kept, so that nothing is lost
                    self.keep(child, f"{location}/{leaf.name}", written, after, rejected=True)
                continue
            spec = nested.get(name_tag) if nested is not None else None
            if spec is None or spec.repeatable:
                if counts is None:
                    counts = {}
                n = counts[name_tag] = counts.get(name_tag, 0) + 1
            if spec is None:  # unknown: indexed like a repeatable element, counted as we go
                self.keep(child, f"{location}/{local_name(name_tag)}[{n}]", written, after)
                continue
            if spec.repeatable:
                where = f"{location}/{spec.name}[{n}]"
            else:
                where = f"{location}/{spec.name}"
            rejections, kept, texts = self.rejections, len(self.elements), len(self.texts)
            written_step = spec.handler(self, child, where, written, data, tpre)
            if written_step is not None:
                after = written_step
            elif (
                self.rejections != rejections
                or len(self.elements) != kept
                or len(self.texts) != texts
            ):
                # Not imported (or not written back), yet it held something: kept whole, in place
                # of what was kept from inside it (which would have nowhere to go).
                del self.elements[kept:]
                del self.texts[texts:]
                self.keep(child, where, written, after, rejected=True)
        if between is not None and not between.isspace():
            self.stray(between, location, written, after)

    def _leaf(
        self,
        child: etree._Element,
        leaf: Leaf,
        location: str,
        written: str,
        data: dict[str, Any],
        tpre: str,
    ) -> bool:
        """The general path for a leaf element: attributes on it, comments in it, repeats, bad values."""
        where = f"{location}/{leaf.name}"
        if child.keys():
            self.check_attributes(child, where, f"{written}/{leaf.name}", leaf.name)
        try:
            text = leaf_text(child)
        except Bad as bad:
            if leaf.required:
                raise Invalid(where, bad.rule, bad.message) from None
            self.reject(where, tpre + leaf.key, bad.rule, bad.message)
            return False
        return self.value(leaf, text, where, data, tpre)

    def fill(
        self,
        el: etree._Element,
        shape: Shape,
        location: str,
        path: str,
        data: dict[str, Any],
        tpre: str,
    ) -> None:
        """Read an element of a known shape into `data`."""
        keys = el.keys()
        if keys and not shape.known.issuperset(keys):
            self.check_attributes(el, location, path, shape.name)
        if shape.start is not None:
            shape.start(data)
        for leaf in shape.attributes:
            key = leaf.key
            text = el.get(leaf.name)
            if text is not None and key not in data:
                try:
                    value = leaf.convert(text)
                except Bad:
                    value = None
                if value is not None:
                    data[key] = value
                    rule = leaf.rule
                    if leaf.rule_if_changed and value == text:
                        rule = None
                    entry = _FAST.get((location, tpre, key, rule, True))
                    if entry is None:
                        entry = _fast(location, tpre, key, rule, True, f"{location}/@{leaf.name}")
                    self.fields.append(entry)
                    continue
            self.attribute(el, leaf, location, data, tpre)
        if len(el):
            self.children(el, location, path, data, tpre, shape.leaves, shape.nested)
        else:
            text = el.text  # a container of attributes only (a Closure, an Agency): no value
            if text is not None and not text.isspace():
                self.stray(text, location, path, None)
        if shape.finish is not None:
            shape.finish(self, data, tpre)

    def item(
        self,
        model: type[M] | None,
        el: etree._Element,
        shape: Shape,
        location: str,
        path: str,
        tpre: str,
    ) -> M | dict[str, Any] | None:
        """Read one list entry. Validated on its own when `careful` (else the episode's validation
        does it); if it cannot be used, all of it is reported rejected and None returned."""
        start, warned = len(self.fields), len(self.warnings)
        kept, kept_attributes, kept_texts = (
            len(self.elements),
            len(self.attributes),
            len(self.texts),
        )
        data: dict[str, Any] = {}
        try:
            if shape.strict:
                self.strict = location
                try:
                    self.fill(el, shape, location, path, data, tpre)
                finally:
                    self.strict = None
            else:
                self.fill(el, shape, location, path, data, tpre)
            if model is None or not self.careful:
                return data
            return model.model_validate(data)
        except Invalid as invalid:
            where, rule, message = invalid.location, invalid.rule, invalid.message
        except ValidationError as exc:
            where, rule, message = self.locate(exc, start, tpre, location)
        del self.fields[start:]
        del self.warnings[warned:]
        del self.elements[kept:]
        del self.attributes[kept_attributes:]
        del self.texts[kept_texts:]
        self.reject_all(el, location, where, rule, message, tpre.rstrip("."))
        return None

    def locate(
        self,
        exc: ValidationError,
        start: int,
        tpre: str,
        location: str,
        missing: Mapping[str, str] | None = None,
    ) -> tuple[str, str, str]:
        """The local location, rule and message of a model's first error (never its input). A field
        the document lacks has no report entry: `missing` says where it belongs, else the item."""
        problem = problems_from(exc)[0]
        target = _dotted(tpre + ".".join(str(p) for p in problem.path))
        for entry in self.fields[start:]:
            if entry.target is not None and _dotted(entry.target) == target:
                return entry.location, problem.rule, problem.message
        if missing is not None:
            location = missing.get(target, location)
        return location, problem.rule, problem.message

    def reject_all(
        self,
        el: etree._Element,
        location: str,
        where: str,
        rule: str,
        message: str,
        target: str,
        whole: bool = False,
    ) -> None:
        """Every field of a rejected item, reported rejected; the one at fault says why (all of them,
        when the fault is the item's as a whole)."""
        self.rejections += 1
        found = False
        for place in _leaf_locations(el, location):
            if whole or place == where:
                found = True
                self.fields.append(FieldReport(place, Fate.REJECTED, None, rule, message))
            else:
                self.fields.append(
                    FieldReport(place, Fate.REJECTED, None, "ecaf.item_rejected", _ITEM_REJECTED)
                )
        if not found:  # a field the item lacks: the fault is reported at the item
            self.fields.append(FieldReport(where, Fate.REJECTED, None, rule, message))
        self.warnings.append(
            Problem(
                _national_path(target.rsplit("[", 1)[0] if target.endswith("]") else target),
                rule,
                f"{location} was not imported: {where}: {message}",
                "warning",
            )
        )


_TOO_MUCH_KEPT: Final = f"more than {MAX_KEPT} unknown elements and attributes to keep"
_NOT_UNDERSTOOD: Final = (
    "a consent statement holds content this adapter does not understand, so none of it is used"
)
_ITEM_REJECTED: Final = "part of an entry that was not imported (see the entry's other fields)"


def _dotted(target: str) -> str:
    """Compare `a[0].b` and `a.0.b` alike."""
    return target.replace("[", ".").replace("]", "")


def _leaf_locations(el: etree._Element, location: str) -> list[str]:
    """Locations of every field (attribute, text-only element) under `el`, in document order."""
    found = [f"{location}/@{local_name(a)}" for a in el.keys()]
    children = [c for c in el if isinstance(c.tag, str)]
    if not children:
        if el.text is not None and el.text.strip():
            found.append(location)
        return found if found else [location]
    repeatable = REPEATABLE.get(local_name(el.tag), frozenset())
    counts: dict[str, int] = {}
    for child in children:
        name = local_name(child.tag)
        counts[name] = counts.get(name, 0) + 1
        where = f"{location}/{step(name, counts[name], name in repeatable)}"
        found.extend(_leaf_locations(child, where))
    return found


def _values(el: etree._Element, location: str) -> dict[str, JsonValue]:
    """The text and attributes of kept content, flattened for people who cannot read the XML.
    Bounded like all kept content (and attributes read by name: lxml's items() is quadratic)."""
    values: dict[str, JsonValue] = {}
    budget = MAX_KEPT

    def visit(node: etree._Element, path: str) -> None:
        nonlocal budget
        keys = node.keys()
        children = [c for c in node if isinstance(c.tag, str)]
        budget -= len(keys) + len(children)
        if budget < 0:
            raise AdapterError("payload_too_large", _TOO_MUCH_KEPT, location)
        for attribute in keys:
            values[f"{path}/@{local_name(attribute)}"] = node.get(attribute)
        if not children and node.text is not None and node.text.strip():
            values[path] = node.text
        counts: dict[str, int] = {}
        for child in children:
            name = local_name(child.tag)
            n = counts[name] = counts.get(name, 0) + 1
            visit(child, f"{path}/{name}" if n == 1 else f"{path}/{name}[{n}]")

    visit(el, local_name(el.tag))
    return values
