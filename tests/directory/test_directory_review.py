"""Review of the service directory's own parts: text search finds what services say (in any script,
never the access rule's words), files carrying NaN or Infinity are refused record by record, a
postcode sector stays in its district, and the signed metadata is fetched only over https without
following redirects."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from directory.members import MetadataError, MetadataSource, metadata_location, sign_metadata
from directory.services import (
    Query,
    ServiceIndex,
    district_of,
    generate_services,
    locate_postcode,
    read_services,
)
from gateway.settings import Settings

from .test_members import OPERATOR, PINNED, T0, Clock, metadata

CAMDEN = "E09000007"


def _camden(count: int) -> ServiceIndex:
    accepted, rejected = read_services(generate_services(CAMDEN, "Camden", count))
    assert not rejected
    return ServiceIndex([(CAMDEN, record) for record in accepted])


def _words_of(record: Any) -> str:
    """What a practitioner reads of a service: its name, description, provider and needs."""
    service = record.service
    needs = [
        a.taxonomy_term.name
        for a in service.attributes
        if a.taxonomy_term is not None and not a.taxonomy_term.taxonomy.startswith("cafx-access")
    ]
    provider = service.organization.name if service.organization else ""
    return " ".join([service.name, service.description or "", provider, *needs]).lower()


def test_the_access_rule_is_not_searched_as_words() -> None:
    """`residents_only`, `universal`, a protocol's name and its members' GSS codes say who may use
    a service, not what it is: `only` used to find every residents-only service, `youth` every
    service of the Pan-London youth passport protocol."""
    index = _camden(300)
    for word in ("only", "residents", "universal", "passport", "protocol", "e09000012", "london"):
        found = index.search(Query(text=word, per_page=100))
        assert all(word in _words_of(hit.record) for hit in found.hits), word
    youth = index.search(Query(text="youth", per_page=100))
    assert youth.total > 0
    assert all("youth" in _words_of(hit.record) for hit in youth.hits)
    assert index.search(Query(text="residents")).total == 0
    # The rule is still a filter: by its term.
    assert index.search(Query(taxonomy_term_id="residents_only")).total > 0


def _named(*names: str) -> ServiceIndex:
    documents = generate_services(CAMDEN, "Camden", len(names) + 5)
    for document, name in zip(documents, names, strict=False):
        document.update(name=name, status="active")
    accepted, rejected = read_services(documents)
    assert not rejected
    return ServiceIndex([(CAMDEN, record) for record in accepted])


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("cafe", "Café for young carers"),
        ("café", "Café for young carers"),
        ("CAFÉ", "Café for young carers"),
        ("zlobek", "Żłobek Polish playgroup"),
        ("Żłobek", "Żłobek Polish playgroup"),
        ("strasse", "Straße family hub"),
        ("বাংলা", "বাংলা homework club"),
        ("日本語", "日本語 Saturday school"),
    ],
)
def test_text_search_reads_every_script(text: str, name: str) -> None:
    index = _named(
        "Café for young carers",
        "Żłobek Polish playgroup",
        "Straße family hub",
        "বাংলা homework club",
        "日本語 Saturday school",
    )
    found = index.search(Query(text=text, per_page=100))
    assert [hit.record.service.name for hit in found.hits] == [name]


def test_text_with_no_word_finds_nothing_rather_than_everything() -> None:
    index = _camden(30)
    assert index.search(Query()).total > 0
    for text in ("ελληνικά", "!!", "👶", "—"):
        assert index.search(Query(text=text)).total == 0, text
    assert index.search(Query(text="   ")).total == index.search(Query()).total


def _with_numbers(text: str) -> Any:
    """A file as a borough's tool might write it: Python's json writes NaN and Infinity, and a
    reader turns 1e400 into Infinity."""
    return json.loads(text)


def test_nan_and_infinity_are_refused_where_they_are() -> None:
    good, nan, infinite, huge, big_int = generate_services(CAMDEN, "Camden", 5)
    nan["service_at_locations"][0]["location"]["latitude"] = float("nan")
    infinite["cost_options"] = [{"id": str(uuid.uuid4()), "option": "a session", "amount": -1}]
    text = json.dumps([good, nan, infinite, huge, big_int])
    assert text.count('"amount": -1') == 1
    text = text.replace('"amount": -1', '"amount": Infinity')
    data = _with_numbers(text)
    data[3]["minimum_age"] = json.loads("1e400")
    data[4]["maximum_age"] = 10**400  # an integer no float can hold
    accepted, rejected = read_services(data)
    assert [record.id for record in accepted] == [good["id"]]
    assert [
        (rejection.where, [(p.where, p.rule) for p in rejection.problems]) for rejection in rejected
    ] == [
        ("/1", [("/1/service_at_locations/0/location/latitude", "oruk.number")]),
        ("/2", [("/2/cost_options/0/amount", "oruk.number")]),
        ("/3", [("/3/minimum_age", "oruk.number")]),
        ("/4", [("/4/maximum_age", "oruk.number")]),
    ]


@pytest.mark.parametrize(
    ("postcode", "district"),
    [
        ("E1 7", "E1"),
        ("N1 0", "N1"),
        ("SW1 1", "SW1"),
        ("E17", "E17"),
        ("SW11", "SW11"),
        ("E1 7AA", "E1"),
        ("E17AA", "E1"),
        (" n1   9gu ", "N1"),
        ("EC1A 1BB", "EC1A"),
        ("E1 7A", None),
        ("E1 AB", None),
        ("E1 7AA 1", None),
    ],
)
def test_a_postcode_sector_stays_in_its_district(postcode: str, district: str | None) -> None:
    assert district_of(postcode) == district


def test_a_sector_is_placed_at_its_own_district() -> None:
    assert locate_postcode("E1 7") == locate_postcode("E1") != locate_postcode("E17")


@pytest.mark.parametrize(
    "location",
    ["http://operator.example/metadata.jws", "HTTP://operator.example/m", "http://10.0.0.1/m"],
)
def test_metadata_over_plain_http_is_refused(location: str) -> None:
    with pytest.raises(ValueError, match="https"):
        MetadataSource(location, PINNED)
    with pytest.raises(ValueError, match="https"):
        Settings(member_id=CAMDEN, federation_metadata=location)


@pytest.mark.parametrize(
    "location",
    [
        "https://operator.example/metadata.jws",
        "http://127.0.0.1:8080/metadata.jws",
        "http://localhost/metadata.jws",
        "http://[::1]/metadata.jws",
    ],
)
def test_https_or_loopback_metadata_urls_are_taken(location: str) -> None:
    assert metadata_location(location) == location
    assert Settings(member_id=CAMDEN, federation_metadata=location).federation_metadata == location


def test_a_metadata_file_is_still_a_file(tmp_path: Path) -> None:
    assert metadata_location(str(tmp_path / "metadata.jws")) == tmp_path / "metadata.jws"


async def test_a_redirect_is_not_followed(aiohttp_server: AiohttpServer) -> None:
    """A redirect could lead to any host, plain http included: the fetch fails and says so, and
    the last good copy stays in place."""
    token = sign_metadata(metadata(version=1), OPERATOR)

    async def redirect(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/metadata.jws")

    async def serve(request: web.Request) -> web.StreamResponse:
        return web.Response(text=token, content_type="application/jwt")

    app = web.Application()
    app.router.add_get("/moved.jws", redirect)
    app.router.add_get("/metadata.jws", serve)
    server = await aiohttp_server(app)
    clock = Clock(T0)
    direct = MetadataSource(str(server.make_url("/metadata.jws")), PINNED, clock=clock)
    assert (await direct.refresh()).version == 1
    moved = MetadataSource(str(server.make_url("/moved.jws")), PINNED, clock=clock)
    with pytest.raises(MetadataError, match="answered 302") as caught:
        await moved.refresh()
    assert caught.value.code == "unavailable"
