"""Open Referral UK JSON in and out: check records against the published schemas, read files of
services (a page, a list or one service), write a page that `service_list.json` accepts.

A file of any other shape (a `{"services": [...]}` wrapper, `{}`, `null`, a page whose `contents`
is not a list) is not read at all (`UnusableFile`): taken as one service it would be one rejected
record, and an import that replaces a directory would then withdraw every service.

Checked with `jsonschema` (Draft 2020-12 with its format checker: uuid, email, date-time) against the
compiled schemas shipped in `data/` (copies of the UK profile's `schema/compiled/`), then read into
the models for what this node needs; a record that fails either is rejected whole, with the JSON
pointer of each fault.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from pydantic import ValidationError

from schemas import Problem, problems_from

from ._access import Access, AccessError, access_of
from ._models import Service

__all__ = [
    "Rejected",
    "ServiceRecord",
    "UnusableFile",
    "is_service_id",
    "list_page",
    "page_problems",
    "read_services",
    "record_count",
    "service_problems",
    "stored_record",
]

_MESSAGE_LIMIT = 200
# The schema's `uuid` format lets `{...}`, a trailing `-` and upper case through; the stored id is
# 36 characters, and one service has one id.
_SERVICE_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def is_service_id(value: object) -> bool:
    """A service id as this node stores it: a UUID in its canonical, lower-case form."""
    return isinstance(value, str) and _SERVICE_ID.fullmatch(value) is not None


class UnusableFile(ValueError):
    """A file that is services in none of the shapes read here: nothing of it is read."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(f"{problem.where or '/'}: {problem.rule}: {problem.message}")
        self.problem = problem


@dataclass(frozen=True, slots=True)
class ServiceRecord:
    """One service as received (`document`, what is stored and exported) and as read."""

    document: dict[str, Any]
    service: Service
    access: Access
    where: str = ""  # JSON pointer of the record in the file it was read from ("" for one service)

    @property
    def id(self) -> str:
        return self.service.id


@dataclass(frozen=True, slots=True)
class Rejected:
    where: str  # JSON pointer of the record in the file
    service_id: str | None
    problems: list[Problem]


@cache
def _validator(name: str) -> Draft202012Validator:
    schema = json.loads(files("directory.services").joinpath(f"data/{name}").read_text("utf-8"))
    return Draft202012Validator(schema, format_checker=FormatChecker())


def _schema_problems(
    validator: Draft202012Validator, document: Any, prefix: tuple[str | int, ...]
) -> list[Problem]:
    return [
        Problem(
            (*prefix, *error.absolute_path),
            f"oruk.{error.validator}",
            error.message[:_MESSAGE_LIMIT],
        )
        for error in sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    ]


def service_problems(document: Any, prefix: tuple[str | int, ...] = ()) -> list[Problem]:
    """Faults against the published `service.json` (a full service)."""
    return _schema_problems(_validator("oruk-service.json"), document, prefix)


_PAGE_FIELDS = {
    "total_items": int,
    "total_pages": int,
    "page_number": int,
    "size": int,
    "first_page": bool,
    "last_page": bool,
    "empty": bool,
}


def page_problems(page: Any) -> list[Problem]:
    """Faults of a page of services: the ORUK `Page` fields, and each of `contents` against
    `service_list.json` (the list form) and `service.json` (nested parts, where present)."""
    if not isinstance(page, dict) or not isinstance(page.get("contents"), list):
        return [Problem(("contents",), "oruk.page", "a page has a contents array")]
    problems = [
        Problem((name,), "oruk.page", f"{name} is a {kind.__name__}")
        for name, kind in _PAGE_FIELDS.items()
        if name in page and (type(page[name]) is not kind)
    ]
    listed = _validator("oruk-service-list.json")
    for number, item in enumerate(page["contents"]):
        problems += _schema_problems(listed, item, ("contents", number))
        problems += service_problems(item, ("contents", number))
    return problems


def _records(data: Any) -> list[tuple[tuple[str | int, ...], Any]]:
    """The records of a page (`contents`), a list, or one service (an object with an `id`)."""
    if isinstance(data, list):
        return [((n,), item) for n, item in enumerate(data)]
    if isinstance(data, dict) and "contents" in data:
        if not isinstance(data["contents"], list):
            raise UnusableFile(Problem(("contents",), "oruk.page", "a page's contents is a list"))
        return [(("contents", n), item) for n, item in enumerate(data["contents"])]
    if isinstance(data, dict) and "id" in data:
        return [((), data)]
    raise UnusableFile(
        Problem(
            (),
            "oruk.file",
            "not an ORUK page (an object with a contents list), a list of services or one"
            " service (an object with an id)",
        )
    )


def record_count(data: Any) -> int:
    """How many records `data` holds; `UnusableFile` if it is none of the shapes read here."""
    return len(_records(data))


def _pointer(path: Sequence[str | int]) -> str:
    return Problem(tuple(path), "", "").pointer if path else ""


def _read_one(path: tuple[str | int, ...], item: Any) -> ServiceRecord | Rejected:
    service_id = item.get("id") if isinstance(item, dict) else None
    service_id = service_id if isinstance(service_id, str) else None
    if not isinstance(item, dict):
        return Rejected(
            _pointer(path), None, [Problem(path, "oruk.type", "a service is an object")]
        )
    if problems := _number_problems(item, path) or service_problems(item, path):
        return Rejected(_pointer(path), service_id, problems)
    if not is_service_id(service_id):
        problem = Problem(
            (*path, "id"), "oruk.id", "a service id is a UUID in lower case, 36 characters"
        )
        return Rejected(_pointer(path), service_id, [problem])
    try:
        service = Service.model_validate(item)
        access = access_of(service)
    except ValidationError as exc:
        located = [Problem((*path, *p.path), p.rule, p.message) for p in problems_from(exc)]
        return Rejected(_pointer(path), service_id, located)
    except AccessError as exc:
        where = _pointer(path) + exc.where
        return Rejected(
            _pointer(path), service_id, [Problem((), exc.rule, exc.message, location=where)]
        )
    if not _sane_ages(service):
        problem = Problem((*path, "maximum_age"), "oruk.ages", "maximum_age is below minimum_age")
        return Rejected(_pointer(path), service_id, [problem])
    return ServiceRecord(item, service, access, _pointer(path))


def _number_problems(item: Any, path: tuple[str | int, ...]) -> list[Problem]:
    """NaN and Infinity (which Python's JSON reader accepts, and which 1e400 becomes) and integers
    too large for a float: no JSON answer may carry the first, the index cannot hold the second.
    The schema's `number` lets both through. Walked without recursion: nesting depth is the file's."""
    problems = []
    pending: list[tuple[tuple[str | int, ...], Any]] = [(path, item)]
    while pending:
        where, value = pending.pop()
        if isinstance(value, dict):
            pending += [((*where, key), member) for key, member in value.items()]
        elif isinstance(value, list):
            pending += [((*where, number), member) for number, member in enumerate(value)]
        elif isinstance(value, float | int) and not isinstance(value, bool) and not _finite(value):
            problems.append(Problem(where, "oruk.number", "a number must be finite and in range"))
    return sorted(problems, key=lambda problem: problem.where)


def _finite(value: float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond the largest float
        return False


def _sane_ages(service: Service) -> bool:
    low, high = service.minimum_age, service.maximum_age
    values = [v for v in (low, high) if v is not None]
    if any(not math.isfinite(v) or v < 0 for v in values):
        return False
    return low is None or high is None or low <= high


def read_services(
    data: Any, progress: Callable[[int], None] | None = None
) -> tuple[list[ServiceRecord], list[Rejected]]:
    """Every record of `data` (parsed JSON) read, or rejected with where and why. The same id twice
    in one file: the second is rejected (which one the borough meant cannot be known). A file of
    no shape read here raises `UnusableFile`."""
    accepted: list[ServiceRecord] = []
    rejected: list[Rejected] = []
    seen: set[str] = set()
    for path, item in _records(data):
        outcome = _read_one(path, item)
        if isinstance(outcome, ServiceRecord) and outcome.id in seen:
            problem = Problem(
                (*path, "id"), "oruk.duplicate", "this id appears earlier in the file"
            )
            outcome = Rejected(_pointer(path), outcome.id, [problem])
        if isinstance(outcome, ServiceRecord):
            seen.add(outcome.id)
            accepted.append(outcome)
        else:
            rejected.append(outcome)
        if progress is not None:
            progress(1)
    return accepted, rejected


def list_page(
    documents: Iterable[dict[str, Any]],
    *,
    total: int | None = None,
    page: int = 1,
    per_page: int = 0,
) -> dict[str, Any]:
    """An ORUK page (`Page` + `contents`). Without `per_page`, all of `documents` on one page."""
    contents = list(documents)
    total = len(contents) if total is None else total
    size = per_page or max(len(contents), 1)
    pages = max(1, math.ceil(total / size)) if total else 1
    return {
        "total_items": total,
        "total_pages": pages,
        "page_number": page,
        "size": len(contents),
        "first_page": page == 1,
        "last_page": page >= pages,
        "empty": not contents,
        "contents": contents,
    }


def stored_record(document: dict[str, Any]) -> ServiceRecord:
    """A record this node checked when it was imported, read back from storage (no schema pass:
    that is what keeps start-up quick with tens of thousands of services)."""
    service = Service.model_validate(document)
    return ServiceRecord(document, service, access_of(service))
