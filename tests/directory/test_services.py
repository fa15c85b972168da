"""The service directory's own parts, without a node: Open Referral UK in and out (checked against
the published schemas in shared/standards), the access rule in attributes, eligibility, postcode
districts and distance, and search over the index."""

from __future__ import annotations

import copy
import json
import uuid
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from directory.services import (
    Access,
    Child,
    Query,
    ServiceIndex,
    ServiceRecord,
    access_attributes,
    access_of,
    district_centroids,
    district_of,
    eligibility,
    generate_services,
    haversine_m,
    list_page,
    locate_postcode,
    page_problems,
    parse_eligible_for,
    read_services,
)
from directory.services._models import Service

# The published standard, as the tests' own copy (tests/fixtures/openreferral-uk/README.md says why);
# the brief's original sits beside the repository on the project machine.
STANDARD = Path(__file__).resolve().parents[1] / "fixtures" / "openreferral-uk"
ORIGINAL = Path(__file__).resolve().parents[3] / "shared" / "standards" / "openreferral-uk"
SHIPPED = Path(__file__).resolve().parents[2] / "directory" / "services" / "data"
CAMDEN, HACKNEY, ISLINGTON, LAMBETH = "E09000007", "E09000012", "E09000019", "E09000022"


@cache
def _published(name: str) -> Draft202012Validator:
    schema = json.loads((STANDARD / "schema" / "compiled" / name).read_text(encoding="utf-8"))
    return Draft202012Validator(schema, format_checker=FormatChecker())


def _assert_valid_page(page: dict[str, Any]) -> None:
    """Against the published schemas themselves: each entry is a full service (service.json) and a
    list entry (service_list.json); the page has the ORUK Page fields."""
    for name in ("total_items", "total_pages", "page_number", "size"):
        assert isinstance(page[name], int)
    for name in ("first_page", "last_page", "empty"):
        assert isinstance(page[name], bool)
    for item in page["contents"]:
        for schema in ("service.json", "service_list.json"):
            errors = [e.message for e in _published(schema).iter_errors(item)]
            assert errors == [], (schema, errors[:3])


def _example(name: str) -> Any:
    return json.loads((STANDARD / "examples" / name).read_text(encoding="utf-8"))


def test_the_shipped_schemas_are_the_published_ones() -> None:
    for shipped, published in (
        ("oruk-service.json", "service.json"),
        ("oruk-service-list.json", "service_list.json"),
    ):
        assert (SHIPPED / shipped).read_bytes() == (
            STANDARD / "schema" / "compiled" / published
        ).read_bytes()


def test_the_tests_copy_of_the_standard_is_the_published_one() -> None:
    if not ORIGINAL.is_dir():
        pytest.skip(f"the brief's standards folder is not beside this checkout ({ORIGINAL})")
    for copied in STANDARD.rglob("*.json"):
        assert copied.read_bytes() == (ORIGINAL / copied.relative_to(STANDARD)).read_bytes()


def test_a_standard_file_comes_back_out_equal() -> None:
    full = _example("service_full.json")
    accepted, rejected = read_services(copy.deepcopy(full))
    assert rejected == []
    assert [r.document for r in accepted] == [full]
    page = list_page(r.document for r in accepted)
    assert page["contents"] == [full] and page["total_items"] == 1 and page["last_page"]
    _assert_valid_page(page)
    assert page_problems(page) == []
    assert accepted[0].access == Access("residents_only", stated=False)  # the file states none


def test_a_standard_page_is_read_record_by_record() -> None:
    listed = _example("service_list.json")
    accepted, rejected = read_services(listed)
    assert rejected == [] and [r.document for r in accepted] == listed["contents"]


def test_generated_services_are_valid_and_the_same_every_time() -> None:
    first = generate_services(CAMDEN, "Camden", 120, seed=3)
    assert first == generate_services(CAMDEN, "Camden", 120, seed=3)
    assert first != generate_services(CAMDEN, "Camden", 120, seed=4)
    _assert_valid_page(list_page(first))
    accepted, rejected = read_services(first)
    assert rejected == [] and len(accepted) == 120
    kinds = {r.access.kind for r in accepted}
    assert kinds == {"universal", "residents_only", "cross_borough_protocol"}
    ages = {(r.service.minimum_age, r.service.maximum_age) for r in accepted}
    assert len(ages) > 10


def _broken(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = copy.deepcopy(_example("service_full.json"))
    document.update(changes)
    return document


def test_rejected_records_say_where_and_why() -> None:
    good = generate_services(HACKNEY, "Hackney", 2)
    protocol_without_members = generate_services(HACKNEY, "Hackney", 1, seed=9)[0]
    protocol_without_members["attributes"] = [
        a
        for a in protocol_without_members["attributes"]
        if a["taxonomy_term"]["taxonomy"] != "cafx-access"
    ] + access_attributes(protocol_without_members["id"], Access("residents_only"))
    protocol_without_members["attributes"][-1]["taxonomy_term"]["term"] = "friends_only"
    data = {
        "contents": [
            good[0],
            _broken(id="not-a-uuid"),
            {k: v for k, v in good[1].items() if k != "name"},
            _broken(status="open"),
            protocol_without_members,
            good[0],  # the same id again
            _broken(minimum_age=12, maximum_age=5),
            "a string",
        ]
    }
    accepted, rejected = read_services(data)
    assert [r.id for r in accepted] == [good[0]["id"]]
    found = {r.where: [(p.where, p.rule) for p in r.problems] for r in rejected}
    assert found["/contents/1"] == [("/contents/1/id", "oruk.format")]
    assert found["/contents/2"] == [("/contents/2", "oruk.required")]
    assert found["/contents/3"] == [("/contents/3/status", "oruk.enum")]
    ((where, rule),) = found["/contents/4"]
    assert rule == "access.unknown" and where.startswith("/contents/4/attributes/")
    assert found["/contents/5"] == [("/contents/5/id", "oruk.duplicate")]
    assert found["/contents/6"] == [("/contents/6/maximum_age", "oruk.ages")]
    assert found["/contents/7"] == [("/contents/7", "oruk.type")]


@pytest.mark.parametrize(
    "access",
    [
        Access("universal"),
        Access("residents_only"),
        Access("cross_borough_protocol", "Pan-London youth passport", frozenset({CAMDEN, HACKNEY})),
    ],
)
def test_the_access_rule_rides_in_attributes(access: Access) -> None:
    document = _broken(attributes=access_attributes("ac148810-d857-441c-9679-408f346de14b", access))
    accepted, rejected = read_services(document)
    assert rejected == []
    assert access_of(Service.model_validate(document)) == access == accepted[0].access
    _assert_valid_page(list_page([document]))


UNIVERSAL = Access("universal")
RESIDENTS = Access("residents_only")
PASSPORT = Access("cross_borough_protocol", "Pan-London youth passport", frozenset({HACKNEY}))


@pytest.mark.parametrize(
    ("access", "child", "eligible", "code"),
    [
        # residents may use every kind of service
        (UNIVERSAL, Child(CAMDEN), True, "resident"),
        (RESIDENTS, Child(CAMDEN, ISLINGTON), True, "resident"),
        (PASSPORT, Child(CAMDEN), True, "resident"),
        # non-residents: universal services take children at school in the borough
        (UNIVERSAL, Child(HACKNEY, CAMDEN), True, "attends_school"),
        (UNIVERSAL, Child(HACKNEY, ISLINGTON), False, "not_resident"),
        (UNIVERSAL, Child(None, CAMDEN), True, "attends_school"),
        # ... or with a GP practice, or at other universal provision, there (003 section 5)
        (UNIVERSAL, Child(HACKNEY, ISLINGTON, gp=CAMDEN), True, "registered_gp"),
        (UNIVERSAL, Child(None, gp=CAMDEN), True, "registered_gp"),
        (UNIVERSAL, Child(HACKNEY, provision=CAMDEN), True, "attends_provision"),
        (UNIVERSAL, Child(HACKNEY, gp=ISLINGTON, provision=ISLINGTON), False, "not_resident"),
        (RESIDENTS, Child(HACKNEY, gp=CAMDEN, provision=CAMDEN), False, "residents_only"),
        (RESIDENTS, Child(HACKNEY, CAMDEN), False, "residents_only"),
        (RESIDENTS, Child(None, CAMDEN), False, "residence_unknown"),
        # protocol: children living in a member authority, wherever they go to school
        (PASSPORT, Child(HACKNEY, ISLINGTON), True, "protocol_member"),
        (PASSPORT, Child(LAMBETH, CAMDEN), False, "outside_protocol"),
        (PASSPORT, Child(ISLINGTON), False, "outside_protocol"),
        # no residence given: unknown, whatever the rule (the child may live in the borough)
        (UNIVERSAL, Child(None, ISLINGTON), False, "residence_unknown"),
        (PASSPORT, Child(None, ISLINGTON), False, "residence_unknown"),
        (PASSPORT, Child(None, CAMDEN), False, "residence_unknown"),
    ],
)
def test_eligibility(access: Access, child: Child, eligible: bool, code: str) -> None:
    verdict = eligibility(CAMDEN, access, child)
    assert (verdict.eligible, verdict.code) == (eligible, code)
    assert verdict.reason


def test_an_unstated_rule_is_residents_only_and_says_so() -> None:
    verdict = eligibility(CAMDEN, Access("residents_only", stated=False), Child(HACKNEY))
    assert not verdict.eligible and "states no rule" in verdict.reason


@pytest.mark.parametrize(
    ("value", "child"),
    [
        (f"residence:{HACKNEY},school:{CAMDEN}", Child(HACKNEY, CAMDEN)),
        (f"school:{CAMDEN}", Child(None, CAMDEN)),
        (f"residence:{HACKNEY}", Child(HACKNEY)),
        (f"gp:{CAMDEN},residence:{HACKNEY}", Child(HACKNEY, gp=CAMDEN)),
        (f"provision:{CAMDEN}", Child(None, provision=CAMDEN)),
    ],
)
def test_eligible_for_is_read(value: str, child: Child) -> None:
    assert parse_eligible_for(value) == child


@pytest.mark.parametrize(
    "value",
    [
        "",
        "home:E09000007",
        "residence:E0900000",
        f"residence:{CAMDEN},residence:{HACKNEY}",
        f"gp:{CAMDEN},gp:{HACKNEY}",
    ],
)
def test_eligible_for_refuses_nonsense(value: str) -> None:
    with pytest.raises(ValueError):
        parse_eligible_for(value)


def test_postcode_districts_and_distances() -> None:
    table = district_centroids()
    assert len(table) > 250
    for district in ("E1", "EC1A", "N22", "NW11", "SE28", "SW1A", "SW20", "W1A", "W14", "WC1A"):
        assert district in table
    for area in ("BR", "CR", "DA", "EN", "HA", "IG", "KT", "RM", "SM", "TW", "UB"):
        assert any(d.rstrip("0123456789") == area for d in table), area
    assert all(51.2 < lat < 51.75 and -0.55 < lon < 0.35 for lat, lon in table.values())
    assert district_of("n1 9gu") == "N1" and district_of("SW1A 1AA") == "SW1A"
    assert district_of("NW10") == "NW10" and district_of("not a postcode") is None
    assert locate_postcode("ZZ1 1ZZ") is None
    # Camden Town (NW1) to Hackney Central (E8): about 6 km as the crow flies.
    assert 5_000 < haversine_m(*table["NW1"], *table["E8"]) < 7_000
    assert haversine_m(51.5, -0.1, 51.5, -0.1) == 0


def _index() -> ServiceIndex:
    entries = []
    for authority, name in ((CAMDEN, "Camden"), (HACKNEY, "Hackney"), (ISLINGTON, "Islington")):
        accepted, _ = read_services(generate_services(authority, name, 300))
        entries += [(authority, record) for record in accepted]
    return ServiceIndex(entries)


def test_search_filters_and_ranks() -> None:
    index = _index()
    everything = index.search(Query(per_page=100))
    assert 850 < everything.total < 900  # inactive services are not offered
    assert all(h.record.service.status != "inactive" for h in everything.hits)

    youth = index.search(Query(text="youth club", per_page=100))
    assert youth.total > 0
    assert all("youth" in h.record.service.name.lower() for h in youth.hits[:5])
    assert [h.relevance for h in youth.hits] == sorted(
        (h.relevance for h in youth.hits), reverse=True
    )

    seven = index.search(Query(age=7, per_page=100))
    assert seven.total > 0 and all(
        (h.record.service.minimum_age or 0) <= 7 <= (h.record.service.maximum_age or 99)
        for h in seven.hits
    )

    origin = locate_postcode("E8 1AA")
    near = index.search(Query(origin=origin, proximity_m=1500, per_page=100))
    assert near.total > 0
    distances = [h.distance_m for h in near.hits]
    assert all(d is not None and d <= 1500 for d in distances)
    assert distances == sorted(distances)  # type: ignore[type-var]
    assert {h.authority for h in near.hits} == {HACKNEY}

    hackney = index.search(Query(authority=HACKNEY, per_page=100))
    assert {h.authority for h in hackney.hits} == {HACKNEY}
    assert index.search(Query(authority="E09000001")).total == 0

    term = index.search(Query(taxonomy_term_id="young-carers", per_page=100))
    assert term.total > 0 and all("Young Carers" in h.record.service.name for h in term.hits)

    child = Child(HACKNEY, CAMDEN)
    judged = index.search(Query(authority=CAMDEN, child=child, per_page=100))
    for hit in judged.hits:
        assert hit.verdict == eligibility(CAMDEN, hit.record.access, child)
    assert {h.verdict.eligible for h in judged.hits if h.verdict} == {True, False}


def _aged(low: float | None, high: float | None) -> tuple[str, ServiceRecord]:
    document = generate_services(CAMDEN, "Camden", 1)[0]
    document.update(id=str(uuid.uuid4()), status="active", minimum_age=low, maximum_age=high)
    for name in ("minimum_age", "maximum_age"):
        if document[name] is None:
            del document[name]  # not stated
    (record,), rejected = read_services(document)
    assert rejected == []
    return CAMDEN, record


def test_age_filters_follow_open_referral_uk() -> None:
    """The published OpenAPI: `minimum_age` returns services with a minimum age of at least X,
    `maximum_age` those with a maximum age at or below Y; `age` is ours, a child aged N."""
    ranges = [(0, 5), (3, 11), (5, 18), (11, 19), (16, 25), (None, 4), (8, None), (None, None)]
    entries = [_aged(low, high) for low, high in ranges]
    index = ServiceIndex(entries)
    ids = {record.id: span for (_, record), span in zip(entries, ranges, strict=True)}

    def found(**filters: float) -> set[tuple[float | None, float | None]]:
        result = index.search(Query(per_page=100, **filters))  # type: ignore[arg-type]
        return {ids[hit.record.id] for hit in result.hits}

    assert found(minimum_age=5) == {(5, 18), (11, 19), (16, 25), (8, None)}
    assert found(maximum_age=11) == {(0, 5), (3, 11), (None, 4)}
    assert found(minimum_age=3, maximum_age=18) == {(3, 11), (5, 18)}
    assert found(minimum_age=0) == set(ranges)  # no stated minimum is from birth
    # A child aged 4 is taken by every service whose range covers 4, and no other.
    assert found(age=4) == {(0, 5), (3, 11), (None, 4), (None, None)}
    assert found(age=16, minimum_age=10) == {(11, 19), (16, 25)}


def test_search_pages_do_not_overlap() -> None:
    index = _index()
    pages = [index.search(Query(text="club", page=n, per_page=7)) for n in (1, 2, 3)]
    ids = [h.record.id for page in pages for h in page.hits]
    assert len(ids) == len(set(ids)) == 21
    assert index.search(Query(text="club", page=1000)).hits == []


def test_a_text_word_matches_the_words_it_begins() -> None:
    index = _index()
    assert (
        index.search(Query(text="counsel")).total == index.search(Query(text="counselling")).total
    )
    assert index.search(Query(text="zzzz")).total == 0
