"""Second review of the service directory on a node, on SQLite and PostgreSQL: `cafx directory
import --replace` never withdraws services because of a file it could not read (a wrapper read as
one rejected service once removed a borough's whole directory), a page whose `contents` is not a
list is refused rather than a traceback, a service id longer than the column or in upper case is
rejected at its record (PostgreSQL lost the whole import), and federated search checks each
member's service as an import would and shows each only once."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from directory.services import ServiceIndex, generate_services, read_services
from gateway.service_directory import federated_search, parse_search, search_page

from ..conftest import Database
from .test_directory import CAMDEN, HACKNEY, _cafx, _config, _exported
from .test_directory_review import _borough, _members


def _import(config: Path, source: Path, data: Any, *options: str) -> tuple[int, str]:
    source.write_text(json.dumps(data), encoding="utf-8")
    code, _, stderr = _cafx("directory", "import", "--config", str(config), *options, str(source))
    return code, stderr


@pytest.mark.parametrize(
    ("shape", "where", "rule"),
    [
        (lambda services: {"services": services}, "/", "oruk.file"),
        (lambda services: {}, "/", "oruk.file"),
        (lambda services: None, "/", "oruk.file"),
        (lambda services: {"totalElements": 3, "content": services}, "/", "oruk.file"),  # ORUK 1
        (lambda services: {"contents": 5}, "/contents", "oruk.page"),
        (lambda services: {"contents": None}, "/contents", "oruk.page"),
    ],
)
def test_a_file_of_no_known_shape_changes_nothing(
    database: Database, tmp_path: Path, shape: Any, where: str, rule: str
) -> None:
    config = _config(database, tmp_path)
    camden = generate_services(CAMDEN, "Camden", 3)
    source = tmp_path / "camden.json"
    assert _import(config, source, camden) == (0, "imported 3 services for E09000007; rejected 0\n")
    for options in ((), ("--replace",)):
        code, stderr = _import(config, source, shape(camden), *options)
        assert code == 2, stderr
        assert f"camden.json: unusable file: {where}: {rule}: " in stderr
        assert "imported" not in stderr and "Traceback" not in stderr
    assert _exported(config, CAMDEN) == {document["id"] for document in camden}


def test_replace_stores_nothing_when_it_cannot_tell_what_the_file_withdraws(
    database: Database, tmp_path: Path
) -> None:
    config = _config(database, tmp_path)
    camden = generate_services(CAMDEN, "Camden", 4)
    ids = {document["id"] for document in camden}
    source = tmp_path / "camden.json"
    assert _import(config, source, camden[:3])[0] == 0
    report = tmp_path / "rejected.json"

    # Every record rejected: one service object of an older shape, or a list of broken records.
    older = {"id": camden[0]["id"], "name": "Old club", "status": "active", "organization": "X"}
    broken = [{**document, "status": "open-ish"} for document in camden[:3]]
    # A rejected record without a readable id might be any stored service.
    unreadable = [camden[3], {**camden[0], "id": camden[0]["id"].upper()}, {"name": "no id"}]
    for data in (older, broken, unreadable):
        code, stderr = _import(config, source, data, "--replace", "--report", str(report))
        assert code == 2, stderr
        assert "nothing stored for E09000007: directory.replace: with --replace" in stderr
        assert json.loads(report.read_text(encoding="utf-8"))  # the rejections still said
        assert _exported(config, CAMDEN) == ids - {camden[3]["id"]}

    # Every record another authority's service: Hackney's directory is not withdrawn either.
    hackney = generate_services(HACKNEY, "Hackney", 2)
    assert _import(config, source, hackney, "--authority", HACKNEY)[0] == 0
    code, stderr = _import(config, source, camden[:2], "--authority", HACKNEY, "--replace")
    assert code == 2 and "directory.authority" in stderr and "nothing stored" in stderr
    assert _exported(config, HACKNEY) == {document["id"] for document in hackney}

    # Without --replace the same files store what they can; an explicit empty list withdraws all.
    assert _import(config, source, unreadable)[0] == 1
    assert _exported(config, CAMDEN) == ids
    code, stderr = _import(config, source, {"contents": []}, "--replace")
    assert code == 0 and "removed 4 not in the file" in stderr
    assert _exported(config, CAMDEN) == set()


def test_a_service_id_is_stored_only_in_its_canonical_form(
    database: Database, tmp_path: Path
) -> None:
    """`<uuid>}`, `<uuid>-` and `<uuid>---` pass the schema's uuid format but not a 36-character
    column (PostgreSQL failed the whole import); upper case made a second service of one UUID."""
    config = _config(database, tmp_path)
    good, other = generate_services(CAMDEN, "Camden", 2)
    base = other["id"]
    variants = [base + "}", base + "-", base + "---", base.upper()]
    records = [good, other, *({**other, "id": value} for value in variants)]
    report = tmp_path / "rejected.json"
    code, stderr = _import(config, tmp_path / "camden.json", records, "--report", str(report))
    assert code == 1, stderr
    assert "imported 2 services for E09000007; rejected 4" in stderr
    assert [
        (r["record"], r["id"], [(p["location"], p["rule"]) for p in r["problems"]])
        for r in json.loads(report.read_text(encoding="utf-8"))
    ] == [(f"/{n}", value, [(f"/{n}/id", "oruk.id")]) for n, value in enumerate(variants, 2)]
    assert _exported(config, CAMDEN) == {good["id"], base}


async def test_federated_search_checks_members_services_as_an_import_does() -> None:
    """A member's service with an id that is no UUID, an age as a string or as `true` (read as 1),
    a latitude as a string, or sent three times: dropped, or shown once, and not counted."""
    hackney = _borough(HACKNEY, "Hackney", 40)
    members = _members((CAMDEN, "Camden"), (HACKNEY, "Hackney"))
    search = parse_search({"scope": "federation", "per_page": "100"})
    kept: list[str] = []

    async def ask(member: str, asked: dict[str, str]) -> tuple[int, Any]:
        query = parse_search(asked).query
        page = search_page(hackney.search(query), query)
        entries = page["contents"]
        entries[0]["id"] = "not-a-uuid"
        entries[1]["minimum_age"] = "0"
        entries[2]["minimum_age"] = True
        entries[3]["service_at_locations"][0]["location"]["latitude"] = "51.5"
        entries[4]["id"] = entries[4]["id"].upper()
        kept.extend(entry["id"] for entry in entries[5:])
        entries += [entries[5], entries[6], entries[5]]
        return 200, page

    page = await federated_search(search, ServiceIndex([]), CAMDEN, members, ask, timeout=5)
    assert page["answered"] == [CAMDEN, HACKNEY] and page["unanswered"] == []
    assert len(kept) > 10
    assert sorted(entry["id"] for entry in page["contents"]) == sorted(kept)
    assert page["total_items"] == page["size"] == len(kept)


async def test_a_members_answer_is_checked_within_its_time_limit() -> None:
    """Checking 100 services takes tens of milliseconds; it used to run on the event loop after
    the member's time limit, so a member answering at once with a large page was never late."""
    hackney = _borough(HACKNEY, "Hackney", 200)
    members = _members((CAMDEN, "Camden"), (HACKNEY, "Hackney"))
    search = parse_search({"scope": "federation", "per_page": "100"})
    page = search_page(hackney.search(search.query), search.query)
    started = time.perf_counter()
    read_services(page["contents"])
    checking = time.perf_counter() - started

    async def ask(member: str, asked: dict[str, str]) -> tuple[int, Any]:
        return 200, page  # at once

    found = await federated_search(
        search, ServiceIndex([]), CAMDEN, members, ask, timeout=checking / 10
    )
    assert found["unanswered"] == [{"member": HACKNEY, "name": "Hackney", "reason": "timeout"}]
    found = await federated_search(search, ServiceIndex([]), CAMDEN, members, ask, timeout=5)
    assert found["unanswered"] == [] and found["size"] == 100
