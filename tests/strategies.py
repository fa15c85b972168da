"""Hypothesis strategies for valid national episodes (for round-trip and agreement properties)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from hypothesis import strategies as st

from schemas import (
    AgencyType,
    ClosureOutcome,
    ConsentMethod,
    ConsentRole,
    EcmOutcome,
    Element,
    Episode,
    EpisodeState,
    Ethnicity,
    Gender,
    Section,
    StepDown,
    london_authorities,
)
from schemas._identifiers import UPN_ALPHABET

TODAY = dt.date.today()

# Everything XML 1.0 can carry, including the whitespace characters that parsers like to rewrite.
xml_characters = st.characters(blacklist_categories=("Cs", "Cc", "Cn")) | st.sampled_from("\t\n\r ")
text = st.text(alphabet=xml_characters, min_size=1, max_size=30)
any_text = st.text(alphabet=xml_characters, max_size=40)
# An identifier kept in plain columns and sent to other members (a consent statement id): no
# control characters, not even the whitespace ones.
id_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Cn")), min_size=1, max_size=30
)
optional_text = st.none() | text
past_dates = st.dates(min_value=dt.date(1990, 1, 1), max_value=TODAY)
gss = st.sampled_from([a.gss for a in london_authorities()])


@st.composite
def nhs_numbers(draw: st.DrawFn) -> str:
    digits = draw(st.text(alphabet="0123456789", min_size=9, max_size=9))
    check = 11 - sum(int(d) * w for d, w in zip(digits, range(10, 1, -1), strict=True)) % 11
    if check == 10:  # no valid number has this body: take one that has (sum 0, check 0)
        digits, check = "000000000", 11
    return digits + str(check % 11)


@st.composite
def upns(draw: st.DrawFn) -> str:
    body = draw(st.text(alphabet="0123456789", min_size=11, max_size=11))
    last = draw(st.sampled_from("0123456789" + UPN_ALPHABET))
    values = [int(c) for c in body] + [int(last) if last.isdigit() else UPN_ALPHABET.index(last)]
    total = sum(v * w for v, w in zip(values, range(2, 14), strict=True))
    return UPN_ALPHABET[total % 23] + body + last


def _enum(kind: Any) -> st.SearchStrategy[str]:
    return st.sampled_from([m.value for m in kind])


def practitioners() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"name": text, "organisation": text, "agency_type": _enum(AgencyType)},
        optional={"role": text, "authority": gss, "telephone": text, "email": text},
    )


def addresses() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"lines": st.lists(text, max_size=3)},
        optional={"town": text, "postcode": st.sampled_from(["NW1 6XE", "E8 1DY", "SW1A 1AA"])},
    )


@st.composite
def consents(draw: st.DrawFn) -> dict[str, Any]:
    given_on = draw(past_dates)
    agency = st.fixed_dictionaries(
        {"agency_type": _enum(AgencyType)}, optional={"name": text, "authority": gss}
    )
    value: dict[str, Any] = {
        "consent_id": draw(id_text),
        "given_by": draw(
            st.lists(
                st.fixed_dictionaries({"role": _enum(ConsentRole), "name": text}),
                min_size=1,
                max_size=2,
            )
        ),
        "given_on": given_on.isoformat(),
        "method": draw(_enum(ConsentMethod)),
        "storage_agreed": draw(st.booleans()),
        "purposes": draw(st.lists(text, max_size=2)),
        "share_with": draw(st.lists(agency, max_size=3)),
        "excluded": draw(st.lists(agency, max_size=2)),
    }
    if draw(st.booleans()):
        value["young_person_competent"] = draw(st.booleans())
    if draw(st.booleans()):
        value["sections"] = draw(st.lists(_enum(Section), max_size=3, unique=True))
    if draw(st.booleans()):
        value["withdrawn_on"] = (
            given_on + dt.timedelta(days=draw(st.integers(0, 400)))
        ).isoformat()
    return value


@st.composite
def assessments(draw: st.DrawFn) -> dict[str, Any]:
    started = draw(past_dates)
    element = st.fixed_dictionaries(
        {"element": _enum(Element)},
        optional={
            "strengths": any_text,
            "needs": any_text,
            "applies_to": st.lists(text, max_size=2),
        },
    )
    value: dict[str, Any] = {
        "version": draw(st.integers(1, 5)),
        "started_on": started.isoformat(),
        "assessor": draw(practitioners()),
        "reason": draw(text),
        "people_present": draw(st.lists(text, max_size=2)),
        "elements": draw(st.lists(element, max_size=5)),
    }
    if draw(st.booleans()):
        value["completed_on"] = (started + dt.timedelta(days=draw(st.integers(0, 60)))).isoformat()
    return value


@st.composite
def episode_documents(draw: st.DrawFn) -> dict[str, Any]:
    """A valid national document as decoded JSON values."""
    state = draw(_enum(EpisodeState))
    child: dict[str, Any] = {
        "given_names": draw(text),
        "family_name": draw(text),
        "gender": draw(_enum(Gender)),
        "previous_names": draw(st.lists(text, max_size=2)),
        "identifiers": draw(
            st.fixed_dictionaries(
                {}, optional={"nhs_number": nhs_numbers(), "upn": upns(), "local_id": text}
            )
        ),
    }
    if draw(st.booleans()):
        child["date_of_birth"] = draw(past_dates).isoformat()
    elif draw(st.booleans()):
        child["expected_date_of_delivery"] = (TODAY + dt.timedelta(days=60)).isoformat()
    for key, strategy in (
        ("known_as", text),
        ("ethnicity", _enum(Ethnicity)),
        ("address", addresses()),
        ("interpreter_required", st.booleans()),
        (
            "disability",
            st.fixed_dictionaries({"present": st.booleans()}, optional={"details": text}),
        ),
    ):
        if draw(st.booleans()):
            child[key] = draw(strategy)
    received = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
    doc: dict[str, Any] = {
        "schema": "caf-episode/1",
        "episode_id": str(uuid.UUID(int=draw(st.integers(0, 2**128 - 1)))),
        "home_authority": draw(gss),
        "state": state,
        "source": {"format": "national-json", "received_at": received.isoformat()},
        "child": child,
        "parents_carers": draw(
            st.lists(
                st.fixed_dictionaries(
                    {"name": text, "relationship": text, "parental_responsibility": st.booleans()},
                    optional={"telephone": text, "address": addresses()},
                ),
                max_size=2,
            )
        ),
        "assessments": draw(st.lists(assessments(), max_size=2)),
        "consents": draw(st.lists(consents(), max_size=2, unique_by=lambda c: c["consent_id"])),
        "tac_members": draw(st.lists(practitioners(), max_size=2)),
        "delivery_plan": draw(
            st.lists(
                st.fixed_dictionaries(
                    {"need": text, "action": text, "responsible": text},
                    optional={
                        "due_on": past_dates.map(dt.date.isoformat),
                        "ecm_outcome": _enum(EcmOutcome),
                    },
                ),
                max_size=2,
            )
        ),
        "reviews": draw(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "held_on": past_dates.map(dt.date.isoformat),
                        "tac_meeting_held": st.booleans(),
                    },
                    optional={"progress": any_text},
                ),
                max_size=2,
            )
        ),
        "extensions": draw(
            st.dictionaries(
                st.sampled_from(["ecaf-xml-v3", "eha-json"]),
                st.dictionaries(
                    text,
                    st.recursive(
                        st.none() | st.booleans() | st.integers(-(10**6), 10**6) | text,
                        lambda inner: (
                            st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3)
                        ),
                        max_leaves=6,
                    ),
                    max_size=3,
                ),
                max_size=2,
            )
        ),
    }
    if draw(st.booleans()):
        doc["lead_professional"] = draw(practitioners())
    if draw(st.booleans()):
        doc["source"]["step_down"] = draw(_enum(StepDown))
    if state in ("closed", "archived") and draw(st.booleans()):
        doc["closure"] = {
            "closed_on": draw(past_dates).isoformat(),
            "outcome": draw(_enum(ClosureOutcome)),
        }
    return doc


def episodes() -> st.SearchStrategy[Episode]:
    return episode_documents().map(Episode.model_validate)
