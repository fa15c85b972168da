"""Review of the service directory on a node: an import carrying NaN or Infinity is refused where
it is (SQLite stored it and the API answered invalid JSON; PostgreSQL lost the import), a page
number of thousands of digits is a 400, and federated search neither fails as a whole for one
member's odd reply nor takes a member's word that it applied the query."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from pytest_aiohttp import AiohttpClient

from directory.members import Member, MemberSuspended
from directory.services import ServiceIndex, generate_services, read_services
from gateway.errors import BadRequest, PeerUnavailable
from gateway.federation.transport.client import _json
from gateway.service_directory import federated_search, parse_search, search_page

from ..conftest import Database
from .test_directory import CAMDEN, HACKNEY, _cafx, _config, _node

ISLINGTON, LAMBETH, CITY = "E09000019", "E09000022", "E09000001"


def _strict(text: str) -> Any:
    def refuse(constant: str) -> Any:
        raise AssertionError(f"{constant} in an answer")

    return json.loads(text, parse_constant=refuse)


async def test_an_import_with_nan_or_infinity_is_refused_where_it_is(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    config = _config(database, tmp_path)
    good, nan, infinite = generate_services(CAMDEN, "Camden", 3)
    nan["service_at_locations"][0]["location"]["latitude"] = float("nan")
    infinite["cost_options"] = [{"id": str(uuid.uuid4()), "option": "a session", "amount": -1}]
    text = json.dumps({"contents": [good, nan, infinite]}).replace(
        '"amount": -1', '"amount": Infinity'
    )
    assert "NaN" in text and "Infinity" in text
    source = tmp_path / "services.json"
    source.write_text(text, encoding="utf-8")
    report = tmp_path / "rejected.json"

    code, _, stderr = await asyncio.to_thread(  # the command runs its own event loop
        _cafx, "directory", "import", "--config", str(config), "--report", str(report), str(source)
    )
    assert code == 1, stderr
    assert "imported 1 services for E09000007; rejected 2" in stderr
    assert [
        (r["record"], [(p["location"], p["rule"]) for p in r["problems"]])
        for r in json.loads(report.read_text(encoding="utf-8"))
    ] == [
        ("/contents/1", [("/contents/1/service_at_locations/0/location/latitude", "oruk.number")]),
        ("/contents/2", [("/contents/2/cost_options/0/amount", "oruk.number")]),
    ]

    http, auth = await _node(aiohttp_client, database, tmp_path, ["directory:read"])
    answer = await http.get("/api/v1/directory/services", headers=auth)
    assert answer.status == 200
    page = _strict(await answer.text())
    assert [entry["id"] for entry in page["contents"]] == [good["id"]]


async def test_a_page_number_of_thousands_of_digits_is_a_bad_request(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    http, auth = await _node(aiohttp_client, database, tmp_path, ["directory:read"])
    for name, value in (("page", "9" * 5000), ("per_page", "1" * 4400), ("page", "0" * 5000)):
        answer = await http.get(f"/api/v1/directory/services?{name}={value}", headers=auth)
        assert answer.status == 400
        problems = (await answer.json())["problems"]
        assert [(p["location"], p["rule"]) for p in problems] == [(name, "query.integer")]
    leading = parse_search({"page": "0" * 5000 + "2", "per_page": "007"}).query
    assert (leading.page, leading.per_page) == (2, 7)


def test_a_number_is_plain_decimal_notation() -> None:
    """`float` takes "1_0", "١٢" and " 12 "; members are sent the query as written."""
    for value in ("1_0", "١٢", " 12", "1e1", "nan"):
        with pytest.raises(BadRequest) as refused:
            parse_search({"age": value})
        assert [(p.location, p.rule) for p in refused.value.problems] == [("age", "query.number")]
    assert parse_search({"age": "12", "minimum_age": "0.5"}).query.age == 12


def test_a_reply_nested_deeper_than_the_reader_goes_is_not_json() -> None:
    with pytest.raises(PeerUnavailable, match="something other than JSON"):
        _json(b"[" * 200_000 + b"]" * 200_000, HACKNEY)


def _members(*boroughs: tuple[str, str]) -> list[Member]:
    return [
        Member(id=gss, name=name, endpoint=f"https://{name.lower()}.example", status="active")
        for gss, name in boroughs
    ]


def _borough(authority: str, name: str, count: int) -> ServiceIndex:
    records, _ = read_services(generate_services(authority, name, count))
    return ServiceIndex([(authority, record) for record in records])


async def test_one_members_odd_reply_never_fails_the_whole_search() -> None:
    """A reply nested deeper than the JSON reader goes, a member the metadata suspended while the
    search was under way, anything else that goes wrong with one member: that member is listed as
    unanswered, the others' services come back."""
    hackney = _borough(HACKNEY, "Hackney", 60)
    members = _members(
        (CAMDEN, "Camden"),
        (HACKNEY, "Hackney"),
        (ISLINGTON, "Islington"),
        (LAMBETH, "Lambeth"),
        (CITY, "City"),
    )
    search = parse_search({"text": "club", "scope": "federation"})

    async def ask(member: str, params: dict[str, str]) -> tuple[int, Any]:
        if member == ISLINGTON:
            raise RecursionError("maximum recursion depth exceeded while decoding a JSON array")
        if member == LAMBETH:
            raise MemberSuspended(f"{member} is suspended from the federation")
        if member == CITY:
            raise KeyError("something nobody expected")
        query = parse_search(params).query
        return 200, search_page(hackney.search(query), query)

    page = await federated_search(search, ServiceIndex([]), CAMDEN, members, ask, timeout=5)
    assert page["answered"] == [CAMDEN, HACKNEY]
    assert page["unanswered"] == [
        {"member": ISLINGTON, "name": "Islington", "reason": "bad_answer"},
        {"member": LAMBETH, "name": "Lambeth", "reason": "refused"},
        {"member": CITY, "name": "City", "reason": "unavailable"},
    ]
    assert page["size"] > 0 and {e["cafx"]["authority"] for e in page["contents"]} == {HACKNEY}


@pytest.mark.parametrize(
    ("params", "ignored"),
    [
        ({"age": "3", "postcode": "E8 1AA", "proximity": "500"}, ("age", "proximity")),
        ({"minimum_age": "5", "maximum_age": "11"}, ("minimum_age", "maximum_age")),
        ({"text": "massage"}, ("text",)),
        ({"taxonomy_term_id": "young-carers"}, ("taxonomy_term_id",)),
        ({"text": "!!"}, ("text",)),
    ],
)
async def test_the_merge_applies_the_query_to_what_members_send(
    params: dict[str, str], ignored: tuple[str, ...]
) -> None:
    """A member on another release that ignores a parameter sends services that do not fit the
    query (and inactive ones too): the merge drops them, exactly as this node's index would have,
    and counts only what it keeps of what it was sent."""
    hackney = _borough(HACKNEY, "Hackney", 200)
    members = _members((CAMDEN, "Camden"), (HACKNEY, "Hackney"))
    search = parse_search({"scope": "federation", "per_page": "100", **params})
    sent: list[dict[str, Any]] = []

    async def ask(member: str, asked: dict[str, str]) -> tuple[int, Any]:
        kept = {name: value for name, value in asked.items() if name not in ignored}
        query = parse_search(kept).query
        page = search_page(hackney.search(query), query)
        page["contents"][0]["status"] = "inactive"  # and one it should never have offered
        sent.extend(page["contents"])
        return 200, page

    page = await federated_search(search, ServiceIndex([]), CAMDEN, members, ask, timeout=5)
    fitting = {hit.record.id for hit in hackney.search(replace(search.query, per_page=1000)).hits}
    wanted = {entry["id"] for entry in sent[1:] if entry["id"] in fitting}
    assert len(sent) == 100 and len(wanted) < 100  # the member did send what does not fit
    assert {entry["id"] for entry in page["contents"]} == wanted
    assert page["total_items"] >= page["size"] == len(wanted)
    if "age" in params:
        assert wanted
        for entry in page["contents"]:
            assert (entry.get("minimum_age") or 0) <= 3 <= (entry.get("maximum_age") or 99)
            assert entry["cafx"]["distance_m"] <= 500
