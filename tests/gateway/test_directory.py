"""The service directory on a node, on SQLite and on PostgreSQL: `cafx directory import/export`
(round trip, rejected records reported), the index picking up an import made by another process,
and `GET /api/v1/directory/services` with every kind of parameter, good and bad."""

from __future__ import annotations

import asyncio
import importlib
import json
import math
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from jsonschema import Draft202012Validator, FormatChecker
from pytest_aiohttp import AiohttpClient

from directory.members import Member
from directory.services import ServiceIndex, generate_services, read_services
from gateway.app import create_app
from gateway.cli import cli
from gateway.errors import PeerUnavailable
from gateway.keys import DIRECTORY
from gateway.service_directory import (
    LiveDirectory,
    federated_search,
    generation,
    parse_search,
    save_services,
    search_page,
)
from gateway.storage import create_engine, upgrade

from ..conftest import Database
from ..directory.test_services import STANDARD, _assert_valid_page, _example
from .node import node_settings, register_system

CAMDEN, HACKNEY = "E09000007", "E09000012"


def _config(database: Database, tmp_path: Path) -> Path:
    config = tmp_path / "node.toml"
    lines = [f'member_id = "{CAMDEN}"', f'database_url = "{database.url}"']
    if database.schema:
        lines.append(f'database_schema = "{database.schema}"')
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return config


def _cafx(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_import_then_export_round_trip(database: Database, tmp_path: Path) -> None:
    config = _config(database, tmp_path)
    full = _example("service_full.json")
    generated = generate_services(CAMDEN, "Camden", 40)
    broken = {**generated[0], "id": "not-a-uuid"}
    source = tmp_path / "services.json"
    source.write_text(json.dumps({"contents": [full, *generated, broken]}), encoding="utf-8")
    report = tmp_path / "rejected.json"

    code, _, stderr = _cafx(
        "directory", "import", "--config", str(config), "--report", str(report), str(source)
    )
    assert code == 1, stderr  # some rejected
    assert "imported 41 services for E09000007; rejected 1" in stderr
    assert "/contents/41/id: oruk.format" in stderr
    assert json.loads(report.read_text(encoding="utf-8")) == [
        {
            "record": "/contents/41",
            "id": "not-a-uuid",
            "problems": [
                {
                    "location": "/contents/41/id",
                    "rule": "oruk.format",
                    "message": "'not-a-uuid' is not a 'uuid'",
                }
            ],
        }
    ]

    out = tmp_path / "export.json"
    code, _, stderr = _cafx("directory", "export", "--config", str(config), "-o", str(out))
    assert code == 0, stderr
    page = json.loads(out.read_text(encoding="utf-8"))
    _assert_valid_page(page)
    assert page["total_items"] == 41 and page["size"] == 41
    exported = {document["id"]: document for document in page["contents"]}
    assert exported == {document["id"]: document for document in [full, *generated]}

    # Only one authority's, and an unknown one has none.
    code, stdout, _ = _cafx("directory", "export", "--config", str(config), "--authority", HACKNEY)
    assert code == 0 and json.loads(stdout)["contents"] == []


def test_the_import_report_prints_what_the_file_says(database: Database, tmp_path: Path) -> None:
    """Ids and messages from the file are text, not rich markup: `[/x]` once stopped the report
    after the accepted records were stored, so the report file was never written."""
    config = _config(database, tmp_path)
    good = generate_services(CAMDEN, "Camden", 2)
    broken = {**good[1], "id": "[/x]"}
    source = tmp_path / "services[red].json"
    source.write_text(json.dumps([good[0], broken]), encoding="utf-8")
    report = tmp_path / "rejected.json"
    code, _, stderr = _cafx(
        "directory", "import", "--config", str(config), "--report", str(report), str(source)
    )
    assert code == 1, stderr
    assert "rejected /1 ([/x]): /1/id: oruk.format: '[/x]' is not a 'uuid'" in stderr
    assert "imported 1 services for E09000007; rejected 1" in stderr
    assert [r["id"] for r in json.loads(report.read_text(encoding="utf-8"))] == ["[/x]"]

    source.write_text("[/x] not json", encoding="utf-8")
    code, _, stderr = _cafx("directory", "import", "--config", str(config), str(source))
    assert code == 2 and "services[red].json: not readable JSON" in stderr


def _exported(config: Path, authority: str) -> set[str]:
    code, stdout, stderr = _cafx(
        "directory", "export", "--config", str(config), "--authority", authority
    )
    assert code == 0, stderr
    return {document["id"] for document in json.loads(stdout)["contents"]}


def test_replace_removes_what_the_file_no_longer_lists(database: Database, tmp_path: Path) -> None:
    config = _config(database, tmp_path)
    camden = generate_services(CAMDEN, "Camden", 5)
    ids = [document["id"] for document in camden]
    source = tmp_path / "camden.json"

    def load(documents: list[dict[str, Any]], *options: str) -> tuple[int, str]:
        source.write_text(json.dumps(documents), encoding="utf-8")
        code, _, stderr = _cafx(
            "directory", "import", "--config", str(config), *options, str(source)
        )
        return code, stderr

    assert load(camden) == (0, "imported 5 services for E09000007; rejected 0\n")
    # Without --replace a shorter file adds and updates only.
    assert load(camden[:2])[0] == 0
    assert _exported(config, CAMDEN) == set(ids)

    # With --replace the file is the whole directory: the service it no longer lists goes, and a
    # record rejected for a fault keeps the service it would have updated.
    faulty = {**camden[3], "status": "open-ish"}
    code, stderr = load([*camden[:3], faulty], "--replace")
    assert code == 1, stderr
    assert f"rejected /3 ({ids[3]}): /3/status" in stderr
    assert "imported 3 services for E09000007; rejected 1; removed 1 not in the file" in stderr
    assert _exported(config, CAMDEN) == set(ids[:4])

    # An empty file with --replace withdraws the authority's services, and only its own.
    hackney = generate_services(HACKNEY, "Hackney", 2)
    assert load(hackney, "--authority", HACKNEY)[0] == 0
    code, stderr = load([], "--replace")
    assert code == 0 and "removed 4 not in the file" in stderr
    assert _exported(config, CAMDEN) == set()
    assert _exported(config, HACKNEY) == {document["id"] for document in hackney}


def test_an_import_never_moves_a_service_to_another_authority(
    database: Database, tmp_path: Path
) -> None:
    config = _config(database, tmp_path)
    camden = generate_services(CAMDEN, "Camden", 3)
    hackney = generate_services(HACKNEY, "Hackney", 1)
    source = tmp_path / "services.json"
    source.write_text(json.dumps(camden), encoding="utf-8")
    assert _cafx("directory", "import", "--config", str(config), str(source))[0] == 0

    # Hackney's file carries a service with the id of one of Camden's: refused, record by record,
    # and the rest of the file is stored; with --replace too, Camden's services stay Camden's.
    clash = {**camden[1], "name": "Hackney's own club"}
    source.write_text(json.dumps({"contents": [*hackney, clash]}), encoding="utf-8")
    report = tmp_path / "rejected.json"
    for options in ((), ("--replace",)):
        code, _, stderr = _cafx(
            "directory", "import", "--config", str(config), "--authority", HACKNEY,
            "--report", str(report), *options, str(source),
        )  # fmt: skip
        assert code == 1, stderr
        assert "imported 1 services for E09000012; rejected 1" in stderr
        assert json.loads(report.read_text(encoding="utf-8")) == [
            {
                "record": "/contents/1",
                "id": camden[1]["id"],
                "problems": [
                    {
                        "location": "/contents/1/id",
                        "rule": "directory.authority",
                        "message": "this id is a service of E09000007: an import does not move a"
                        " service to another authority (remove it there first)",
                    }
                ],
            }
        ]
    assert _exported(config, CAMDEN) == {document["id"] for document in camden}
    assert _exported(config, HACKNEY) == {hackney[0]["id"]}
    code, stdout, _ = _cafx("directory", "export", "--config", str(config))
    names = {d["id"]: d["name"] for d in json.loads(stdout)["contents"]}
    assert names[camden[1]["id"]] == camden[1]["name"]


def test_an_unusable_file_is_refused(database: Database, tmp_path: Path) -> None:
    config = _config(database, tmp_path)
    source = tmp_path / "broken.json"
    source.write_text("{not json", encoding="utf-8")
    code, _, stderr = _cafx("directory", "import", "--config", str(config), str(source))
    assert code == 2 and "not readable JSON" in stderr
    code, _, stderr = _cafx(
        "directory", "import", "--config", str(config), "--authority", "Camden", str(source)
    )
    assert code == 2 and "GSS code" in stderr


async def _node(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path, scopes: list[str]
) -> Any:
    settings = node_settings(database, tmp_path, directory_refresh_seconds=0.05)
    http = await aiohttp_client(create_app(settings))
    system = await register_system(http, settings, scopes)
    return http, {"Authorization": f"Bearer {await system.token(http)}"}


async def test_search_over_the_api(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    http, auth = await _node(aiohttp_client, database, tmp_path, ["directory:read"])
    empty = await (await http.get("/api/v1/directory/services", headers=auth)).json()
    assert empty["total_items"] == 0 and empty["empty"] is True

    # An import by another process (as `cafx directory import` is): the node notices.
    engine = create_engine(database.url, schema=database.schema)
    try:
        await upgrade(engine)
        for authority, name in ((CAMDEN, "Camden"), (HACKNEY, "Hackney")):
            accepted, _ = read_services(generate_services(authority, name, 200))
            await save_services(engine, authority, accepted)
        assert await generation(engine) == 2
        started = LiveDirectory(engine, refresh_seconds=60)  # as a node starting up
        await started.reload()
        assert len(await started.index()) == 400
    finally:
        await engine.dispose()
    await asyncio.sleep(0.1)
    url = (
        "/api/v1/directory/services?text=club&postcode=NW1%202DB&proximity=4000"
        f"&age=9&eligible_for=residence:{HACKNEY},school:{CAMDEN}&per_page=50"
    )
    response = await http.get(url, headers=auth)
    page = await response.json()
    assert response.status == 200, page
    assert page["total_items"] > 0
    _assert_valid_page(page)
    for entry in page["contents"]:
        note = entry["cafx"]
        assert "club" in (entry["name"] + entry["description"]).lower()
        assert entry["minimum_age"] <= 9 <= entry["maximum_age"]
        assert note["distance_m"] <= 4000
        verdict = note["eligibility"]
        if note["authority"] == HACKNEY:
            assert verdict == {"eligible": True, "code": "resident", "reason": verdict["reason"]}
        elif note["access"]["kind"] == "residents_only":
            assert verdict["eligible"] is False and verdict["code"] == "residents_only"
        elif note["access"]["kind"] == "universal":
            assert verdict["eligible"] is True and verdict["code"] == "attends_school"
        else:
            assert verdict["eligible"] is (HACKNEY in note["access"]["members"])

    # The standard's age bounds are bounds on the service's own ages (not the child's).
    bounded = await (
        await http.get(
            "/api/v1/directory/services?minimum_age=11&maximum_age=19&per_page=100", headers=auth
        )
    ).json()
    assert bounded["total_items"] > 0
    assert all(11 <= e["minimum_age"] <= e["maximum_age"] <= 19 for e in bounded["contents"])

    # The ORUK name for text, and paging.
    first = await (
        await http.get("/api/v1/directory/services?search=youth&per_page=5", headers=auth)
    ).json()
    second = await (
        await http.get("/api/v1/directory/services?search=youth&per_page=5&page=2", headers=auth)
    ).json()
    assert (
        first["first_page"]
        and not second["first_page"]
        and first["total_items"] == second["total_items"]
    )
    assert not {e["id"] for e in first["contents"]} & {e["id"] for e in second["contents"]}

    # Outside a federation, scope=federation is this node's own answer, and says so.
    federated = await (
        await http.get("/api/v1/directory/services?scope=federation", headers=auth)
    ).json()
    assert federated["answered"] == [CAMDEN] and federated["unanswered"] == []
    assert {e["cafx"]["authority"] for e in federated["contents"]} == {CAMDEN}

    contacts = await http.get("/api/v1/directory/contacts", headers=auth)
    assert contacts.status == 404
    # The node's own index is the one it answered from: both boroughs' imports, picked up.
    index = await http.app[DIRECTORY].index()
    assert len(index) == 400 and index.authorities == {CAMDEN, HACKNEY}


BAD = [
    ("minimum_age=seven", "minimum_age", "query.number"),
    ("maximum_age=200", "maximum_age", "query.range"),
    ("minimum_age=9&maximum_age=3", "maximum_age", "query.range"),
    ("age=-1", "age", "query.range"),
    ("age=ten", "age", "query.number"),
    ("postcode=ZZ9%209ZZ", "postcode", "query.postcode"),
    ("proximity=500", "proximity", "query.together"),
    ("lat=51.5", "lon", "query.together"),
    ("lat=51.5&lon=-0.1&postcode=N1", "postcode", "query.exclusive"),
    ("authority=Camden", "authority", "query.gss"),
    ("eligible_for=residence:Camden", "eligible_for", "query.eligible_for"),
    ("per_page=1000", "per_page", "query.integer"),
    ("page=0", "page", "query.integer"),
    ("page=%C2%B2", "page", "query.integer"),  # a superscript two is a digit to str.isdigit
    ("scope=everywhere", "scope", "query.enum"),
    ("scope=federation&page=6&per_page=20", "page", "query.depth"),
]


async def test_bad_parameters_are_named(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    http, auth = await _node(aiohttp_client, database, tmp_path, ["directory:read"])
    for query, location, rule in BAD:
        response = await http.get(f"/api/v1/directory/services?{query}", headers=auth)
        body = await response.json()
        assert response.status == 400, (query, body)
        assert body["error"] == "bad_request"
        assert {"location": location, "rule": rule} in [
            {"location": p["location"], "rule": p["rule"]} for p in body["problems"]
        ], (query, body)
    response = await http.get("/api/v1/directory/contacts?authority=nope", headers=auth)
    assert response.status == 400


async def test_the_directory_needs_its_scope(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    http, auth = await _node(aiohttp_client, database, tmp_path, ["episodes:read"])
    for path in ("/api/v1/directory/services", "/api/v1/directory/contacts"):
        response = await http.get(path, headers=auth)
        assert response.status == 403 and (await response.json())["error"] == "insufficient_scope"
    assert (await http.get("/api/v1/directory/services")).status == 401


def test_the_standard_is_where_the_tests_expect_it() -> None:
    assert (STANDARD / "schema" / "compiled" / "service.json").is_file()
    Draft202012Validator.check_schema(
        json.loads((STANDARD / "schema" / "compiled" / "service_list.json").read_text("utf-8"))
    )
    assert FormatChecker().conforms("ac148810-d857-441c-9679-408f346de14b", "uuid")


async def test_federated_merge_waits_for_no_member_longer_than_its_limit() -> None:
    """The merge on its own: members that answer, hang, cannot be reached or answer nonsense."""
    records, _ = read_services(generate_services(HACKNEY, "Hackney", 60))
    hackney = ServiceIndex([(HACKNEY, r) for r in records])
    members = [
        Member(id=gss, name=name, endpoint=f"https://{name.lower()}.example", status="active")
        for gss, name in (
            (CAMDEN, "Camden"),
            (HACKNEY, "Hackney"),
            ("E09000019", "Islington"),
            ("E09000030", "Tower Hamlets"),
            ("E09000022", "Lambeth"),
            ("E09000001", "City of London"),
            ("E09000002", "Barking and Dagenham"),
        )
    ]
    search = parse_search({"text": "club", "per_page": "10", "scope": "federation"})

    async def ask(member: str, params: dict[str, str]) -> tuple[int, Any]:
        if member == HACKNEY:
            query = parse_search(params).query
            return 200, search_page(hackney.search(query), query)
        if member == "E09000019":
            await asyncio.sleep(30)
        if member == "E09000030":
            raise PeerUnavailable("down")
        if member == "E09000001":
            return 503, {"error": "busy"}
        if member == "E09000002":
            return 403, {"error": "member_suspended"}
        return 200, {"total_items": "many"}

    started = asyncio.get_running_loop().time()
    page = await federated_search(search, ServiceIndex([]), CAMDEN, members, ask, timeout=0.3)
    assert asyncio.get_running_loop().time() - started < 2
    assert page["answered"] == [CAMDEN, HACKNEY]
    assert page["unanswered"] == [
        {"member": "E09000019", "name": "Islington", "reason": "timeout"},
        {"member": "E09000030", "name": "Tower Hamlets", "reason": "unreachable"},
        {"member": "E09000022", "name": "Lambeth", "reason": "bad_answer"},
        {"member": "E09000001", "name": "City of London", "reason": "unavailable"},
        {"member": "E09000002", "name": "Barking and Dagenham", "reason": "refused"},
    ]
    assert page["total_items"] == hackney.search(search.query).total > 0
    assert {e["cafx"]["authority"] for e in page["contents"]} == {HACKNEY}


ISLINGTON, LAMBETH = "E09000019", "E09000022"


def _borough(authority: str, name: str, count: int) -> ServiceIndex:
    records, _ = read_services(generate_services(authority, name, count))
    return ServiceIndex([(authority, record) for record in records])


async def test_federated_search_scores_members_answers_itself() -> None:
    """A member may say anything about its services' rank: relevance 1e308, distance 0, every
    child eligible. The merge scores each service it is sent as its own index would, and a member
    that sends NaN (which json.loads accepts and no JSON reply may carry) is a bad answer."""
    hackney, islington = _borough(HACKNEY, "Hackney", 150), _borough(ISLINGTON, "Islington", 150)
    members = [
        Member(id=gss, name=name, endpoint=f"https://{name.lower()}.example", status="active")
        for gss, name in ((CAMDEN, "Camden"), (HACKNEY, "Hackney"), (ISLINGTON, "Islington"))
    ] + [Member(id=LAMBETH, name="Lambeth", endpoint="https://lambeth.example", status="active")]
    params = {
        "text": "club",
        "postcode": "N1 7AA",
        "eligible_for": f"residence:{HACKNEY}",
        "per_page": "20",
        "scope": "federation",
    }
    search = parse_search(params)

    async def ask(member: str, asked: dict[str, str]) -> tuple[int, Any]:
        query = parse_search(asked).query
        if member == HACKNEY:
            return 200, search_page(hackney.search(query), query)
        page = search_page(islington.search(query), query)
        for entry in page["contents"]:  # Islington's node boasts
            entry["cafx"].update(
                relevance=1e308,
                distance_m=0,
                eligibility={"eligible": True, "code": "resident", "reason": "trust me"},
            )
        if member == LAMBETH:
            page["contents"][0]["cafx"]["relevance"] = math.nan
        return 200, page

    page = await federated_search(search, ServiceIndex([]), CAMDEN, members, ask, timeout=5)
    assert page["answered"] == [CAMDEN, HACKNEY, ISLINGTON]
    assert page["unanswered"] == [{"member": LAMBETH, "name": "Lambeth", "reason": "bad_answer"}]
    json.dumps(page, allow_nan=False)
    both = ServiceIndex(
        [(h.authority, h.record) for i in (hackney, islington) for h in i.search(
            replace(search.query, per_page=100)).hits]
    )  # fmt: skip
    expected = both.search(search.query)
    notes = [entry["cafx"] for entry in page["contents"]]
    assert [(n["relevance"], n["distance_m"]) for n in notes] == [
        (h.relevance, round(h.distance_m or 0)) for h in expected.hits
    ]
    assert {n["authority"] for n in notes} == {HACKNEY, ISLINGTON}
    for note in notes:
        if note["authority"] == ISLINGTON:
            assert note["eligibility"]["code"] != "resident" and note["relevance"] < 100


async def test_federated_paging_stops_where_it_says() -> None:
    """Pages past the first 100 services are refused (`query.depth`), so the page says there are
    no more than that, and that the federation holds more (`truncated`)."""
    hackney = _borough(HACKNEY, "Hackney", 300)
    members = [
        Member(id=gss, name=name, endpoint=f"https://{name.lower()}.example", status="active")
        for gss, name in ((CAMDEN, "Camden"), (HACKNEY, "Hackney"))
    ]

    async def ask(member: str, asked: dict[str, str]) -> tuple[int, Any]:
        query = parse_search(asked).query
        return 200, search_page(hackney.search(query), query)

    async def page(**params: str) -> dict[str, Any]:
        search = parse_search({"scope": "federation", **params})
        return await federated_search(search, ServiceIndex([]), CAMDEN, members, ask, timeout=5)

    first = await page(per_page="30")
    assert first["total_items"] > 100
    assert (first["total_pages"], first["last_page"], first["truncated"]) == (3, False, True)
    third = await page(per_page="30", page="3")
    assert (third["total_pages"], third["last_page"], third["size"]) == (3, True, 30)
    few = await page(text="massage", per_page="100")
    assert 0 < few["total_items"] <= 100
    assert (few["total_pages"], few["last_page"], few["truncated"]) == (1, True, False)


def test_migration_docstrings_name_their_own_revisions() -> None:
    """Each migration's header says the revision it is and the one it follows, as its code does
    (the chain is 0001 <- 0002 <- 0003 directory <- 0004 approvals <- 0005 console sessions
    <- 0006 notifications <- 0007 kept_metadata
    <- 0008 transfer escalation <- 0009 received withdrawals <- 0010 transfer closing
    <- 0011 transfer custody <- 0012 bounded reads)."""
    versions = Path(importlib.import_module("gateway.storage.migrations.versions").__file__ or "")
    chain = []
    for path in sorted(versions.parent.glob("0*.py")):
        module = importlib.import_module(f"gateway.storage.migrations.versions.{path.stem}")
        header = module.__doc__ or ""
        said = re.search(r"^Revision ID: (\S*)$", header, re.M)
        follows = re.search(r"^Revises: ?(\S*)$", header, re.M)
        assert said and follows, path.name
        assert said[1] == module.revision, path.name
        assert (follows[1] or None) == module.down_revision, path.name
        chain.append((module.revision, module.down_revision))
    assert chain[2:12] == [
        ("0003", "0002"),
        ("0004", "0003"),
        ("0005", "0004"),
        ("0006", "0005"),
        ("0007", "0006"),
        ("0008", "0007"),
        ("0009", "0008"),
        ("0010", "0009"),
        ("0011", "0010"),
        ("0012", "0011"),
    ]
