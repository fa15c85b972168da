"""What `read_services` takes as a file of services: a page, a list or one service, and nothing
else (a `{"services": [...]}` wrapper read as one rejected service once let `--replace` withdraw a
whole directory); and a service id only in the canonical form the 36-character column holds."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import FormatChecker

from directory.services import (
    UnusableFile,
    generate_services,
    is_service_id,
    read_services,
    record_count,
    service_problems,
)

CAMDEN = "E09000007"
SERVICES = generate_services(CAMDEN, "Camden", 3)


@pytest.mark.parametrize(
    ("data", "where", "rule"),
    [
        ({"services": SERVICES}, "/", "oruk.file"),
        ({}, "/", "oruk.file"),
        (None, "/", "oruk.file"),
        ("services", "/", "oruk.file"),
        (5, "/", "oruk.file"),
        # ORUK 1's Spring-style page
        ({"totalElements": 3, "number": 0, "first": True, "content": SERVICES}, "/", "oruk.file"),
        ({"contents": 5}, "/contents", "oruk.page"),
        ({"contents": None}, "/contents", "oruk.page"),
        ({"contents": {"0": SERVICES[0]}}, "/contents", "oruk.page"),
    ],
)
def test_a_file_of_no_known_shape_is_not_read(data: Any, where: str, rule: str) -> None:
    for read in (read_services, record_count):
        with pytest.raises(UnusableFile) as refused:
            read(data)
        assert (refused.value.problem.where, refused.value.problem.rule) == (where, rule)


@pytest.mark.parametrize(
    ("data", "count"),
    [
        ({"contents": SERVICES, "total_items": 3}, 3),
        (SERVICES, 3),
        (SERVICES[0], 1),
        ([], 0),
        ({"contents": []}, 0),
        ({"id": "not-a-uuid"}, 1),  # one service, rejected as such
    ],
)
def test_a_page_a_list_or_one_service_is_read(data: Any, count: int) -> None:
    assert record_count(data) == count
    accepted, rejected = read_services(data)
    assert len(accepted) + len(rejected) == count


def _variants(base: str) -> list[str]:
    return [base.upper(), base + "}", base + "-", base + "---", base[:-1] + "A"]


def test_a_service_id_is_a_lower_case_uuid_of_36_characters() -> None:
    """The schema's `uuid` format takes each of these, and PostgreSQL refused the whole import on
    the longer ones; upper and lower case of one UUID were two services."""
    base = SERVICES[0]["id"]
    variants = _variants(base)
    assert all(FormatChecker().conforms(value, "uuid") for value in variants)
    documents = [{**SERVICES[0], "id": value} for value in variants]
    assert all(service_problems(document) == [] for document in documents)

    accepted, rejected = read_services([SERVICES[0], *documents])
    assert [record.id for record in accepted] == [base] and is_service_id(base)
    assert [(r.where, r.service_id, [(p.where, p.rule) for p in r.problems]) for r in rejected] == [
        (f"/{n}", value, [(f"/{n}/id", "oruk.id")]) for n, value in enumerate(variants, 1)
    ]
    assert not any(is_service_id(value) for value in [*variants, None, 5, ""])
