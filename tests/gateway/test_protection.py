"""Personal data at rest and finding a child: key ring, envelope encryption, blind indexes, matching."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import stat
import unicodedata
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap
from hypothesis import assume, given
from hypothesis import strategies as st

from gateway.protection import (
    FOUND_THRESHOLD,
    IDENTIFIER_DISAGREEMENT_CONFIDENCE,
    NAME_DOB_CONFIDENCE,
    POSSIBLE_MATCH,
    Candidate,
    DecryptionError,
    IndexKind,
    IndexValueError,
    KeyMaterialError,
    KeyRing,
    Match,
    MatchBasis,
    MatchOutcome,
    NameDob,
    NameQuery,
    PersonName,
    Sealed,
    associated_data,
    blind_index,
    classify,
    fold,
    generate_keyfile,
    match_candidates,
    name_skeleton,
    name_tokens,
    open_,
    phonetic_key,
    query_terms,
    record_terms,
    rewrap,
    seal,
    write_keyfile,
)
from schemas import Child, Gender, IdentifierError
from tests.strategies import nhs_numbers, upns

AD = associated_data("episode", "6f1c2d4e-0000-4000-8000-000000000001", "child")
SECRET = "Zoë-Mae Ó Briain, NHS 943 476 5919, born 2015-03-04".encode()
DOB = dt.date(2015, 3, 4)
NHS, NHS_OTHER = "9434765919", "4010232137"
UPN, UPN_OTHER, UPN_TEMPORARY = "L201234567890", "F304123456782", "L20123456789A"


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


@pytest.fixture
def ring() -> KeyRing:
    return KeyRing.generate()


# -- key ring ------------------------------------------------------------------------------------


def test_generated_keyfile_loads_with_one_current_key_and_a_distinct_index_key() -> None:
    text = generate_keyfile()
    document = json.loads(text)
    assert set(document) == {"format", "current", "keys", "index_key"}
    ring = KeyRing.from_json(text)
    assert ring.current == "k1"
    assert ring.key_ids == ("k1",)
    assert ring.index_key != ring.current_kek
    assert KeyRing.from_json(ring.to_json()).to_json() == ring.to_json()


@pytest.mark.parametrize(
    ("member", "raw", "rule"),
    [
        ("kek", bytes(16), "kek.length"),
        ("kek", bytes(33), "kek.length"),
        ("index_key", bytes(range(24)), "index_key.length"),
    ],
)
def test_keys_of_the_wrong_length_are_refused_without_echoing_them(
    member: str, raw: bytes, rule: str
) -> None:
    document = {
        "current": "k1",
        "keys": {"k1": _b64(bytes(range(32)))},
        "index_key": _b64(bytes(32)),
    }
    if member == "kek":
        document["keys"] = {"k1": _b64(raw)}
    else:
        document["index_key"] = _b64(raw)
    with pytest.raises(KeyMaterialError) as caught:
        KeyRing.from_json(json.dumps(document))
    assert caught.value.rule == rule
    assert "32 bytes" in str(caught.value)
    assert _b64(raw) not in str(caught.value)


K1, K2 = _b64(b"\x01" * 32), _b64(b"\x02" * 32)
GOOD = {"current": "k1", "keys": {"k1": K1}, "index_key": K2}


@pytest.mark.parametrize(
    ("changes", "rule"),
    [
        ({"keys": {"k1": "not base64 ###"}}, "kek.base64"),
        ({"index_key": 42}, "index_key.base64"),
        ({"current": "k2"}, "keyring.current"),
        ({"keys": {}}, "keyring.empty"),
        ({"index_key": None}, "keyring.missing_member"),
        ({"index_key": K1}, "index_key.reused"),
        ({"kek": K1}, "keyring.unknown_member"),
        ({"format": "other/9"}, "keyring.format"),
        ({"current": "k 1", "keys": {"k 1": K1}}, "kek.id"),
        ({"keys": [K1]}, "keyring.shape"),
    ],
)
def test_malformed_key_material_names_the_rule(changes: dict[str, object], rule: str) -> None:
    document = {**GOOD, **changes}
    document = {k: v for k, v in document.items() if v is not None}
    with pytest.raises(KeyMaterialError) as caught:
        KeyRing.from_json(json.dumps(document))
    assert caught.value.rule == rule
    assert K1 not in str(caught.value) and "###" not in str(caught.value)
    assert GOOD == {"current": "k1", "keys": {"k1": K1}, "index_key": K2}


def test_key_material_must_be_an_object() -> None:
    with pytest.raises(KeyMaterialError) as caught:
        KeyRing.from_json("[]")
    assert caught.value.rule == "keyring.shape"
    assert KeyRing.from_json(json.dumps(GOOD)).key_ids == ("k1",)


def test_invalid_json_is_refused_without_chaining_the_input() -> None:
    with pytest.raises(KeyMaterialError) as caught:
        KeyRing.from_json('{"current": "k1", "keys": {"k1": "c2VjcmV0')
    assert caught.value.rule == "keyring.json"
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_repr_shows_key_ids_only(ring: KeyRing) -> None:
    text = repr(ring) + str(ring)
    assert "k1" in text
    for secret in (ring.current_kek, ring.index_key):
        assert _b64(secret) not in text and secret.hex() not in text


def test_from_env_reads_the_same_json_from_a_given_environment(ring: KeyRing) -> None:
    loaded = KeyRing.from_env({"CAFX_KEYS_JSON": ring.to_json()})
    assert loaded.to_json() == ring.to_json()
    with pytest.raises(KeyMaterialError) as caught:
        KeyRing.from_env({})
    assert caught.value.rule == "keyring.env"


def test_keyfile_is_written_owner_only_and_init_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    first = KeyRing.generate()
    write_keyfile(path, first)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert KeyRing.from_file(path).to_json() == first.to_json()
    with pytest.raises(KeyMaterialError) as caught:
        write_keyfile(path, KeyRing.generate())
    assert caught.value.rule == "keyring.file_exists"
    assert KeyRing.from_file(path).to_json() == first.to_json()
    rotated = first.with_new_key()
    write_keyfile(path, rotated, overwrite=True)
    assert KeyRing.from_file(path).current == "k2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keys.json"]  # no temporary left behind


def test_missing_keyfile_is_a_key_material_error(tmp_path: Path) -> None:
    with pytest.raises(KeyMaterialError) as caught:
        KeyRing.from_file(tmp_path / "absent.json")
    assert caught.value.rule == "keyring.file"


def test_new_keys_become_current_old_ones_stay_and_ids_never_repeat(ring: KeyRing) -> None:
    two = ring.with_new_key()
    assert (two.current, two.key_ids) == ("k2", ("k1", "k2"))
    assert two.kek("k1") == ring.current_kek and two.current_kek != ring.current_kek
    three = two.with_new_key().without_keys(["k1", "k2"])
    assert three.key_ids == ("k3",)
    assert three.with_new_key().current == "k4"
    with pytest.raises(KeyMaterialError) as caught:
        three.without_keys(["k3"])
    assert caught.value.rule == "keyring.current"
    with pytest.raises(KeyMaterialError):
        two.with_new_key("k1")


def test_index_key_and_its_fingerprint_survive_kek_rotation(ring: KeyRing) -> None:
    rotated = ring.with_new_key().without_keys(["k1"])
    assert rotated.index_fingerprint() == ring.index_fingerprint()
    assert blind_index("nhs_number", NHS, rotated) == blind_index("nhs_number", NHS, ring)
    assert KeyRing.generate().index_fingerprint() != ring.index_fingerprint()


# -- envelope encryption -------------------------------------------------------------------------


def test_round_trip_and_fresh_randomness_per_value(ring: KeyRing) -> None:
    first, second = seal(SECRET, ring, AD), seal(SECRET, ring, AD)
    assert open_(first, ring, AD) == SECRET
    assert open_(first.to_bytes(), ring, AD) == SECRET
    assert Sealed.from_bytes(first.to_bytes()) == first
    assert first.key_id == "k1"
    assert first.wrapped_key != second.wrapped_key and first.nonce != second.nonce
    assert open_(seal(b"", ring, b""), ring, b"") == b""


@given(plaintext=st.binary(max_size=2048), ad=st.binary(max_size=64))
def test_any_bytes_round_trip_and_leave_no_plaintext(plaintext: bytes, ad: bytes) -> None:
    ring = KeyRing("k1", {"k1": bytes(range(32))}, bytes(range(1, 33)))
    blob = seal(plaintext, ring, ad).to_bytes()
    assert open_(blob, ring, ad) == plaintext
    if len(plaintext) >= 8:
        assert plaintext not in blob


def test_serialisation_holds_no_plaintext_and_no_key_bytes(ring: KeyRing) -> None:
    blob = seal(SECRET, ring, AD).to_bytes()
    for needle in (
        SECRET,
        b"Briain",
        b"9434765919",
        b"2015-03-04",
        ring.current_kek,
        ring.index_key,
    ):
        assert needle not in blob
    assert blob[0] == 1 and blob[2 : 2 + blob[1]] == b"k1"
    assert len(blob) == 2 + 2 + 40 + 12 + len(SECRET) + 16


def test_layout_is_the_documented_one_so_another_implementation_can_open_it(ring: KeyRing) -> None:
    blob = seal(SECRET, ring, AD).to_bytes()
    n = blob[1]
    dek = aes_key_unwrap(ring.current_kek, blob[2 + n : 42 + n])
    nonce, ciphertext = blob[42 + n : 54 + n], blob[54 + n :]
    assert AESGCM(dek).decrypt(nonce, ciphertext, b"\x01" + AD) == SECRET  # version byte is bound
    with pytest.raises(InvalidTag):
        AESGCM(dek).decrypt(nonce, ciphertext, AD)


def _regions(blob: bytes) -> dict[str, range]:
    n = blob[1]
    return {
        "version": range(1),
        "key id length": range(1, 2),
        "key id": range(2, 2 + n),
        "wrapped key": range(2 + n, 42 + n),
        "nonce": range(42 + n, 54 + n),
        "ciphertext": range(54 + n, len(blob) - 16),
        "tag": range(len(blob) - 16, len(blob)),
    }


@pytest.mark.parametrize(
    "region", ["version", "key id length", "key id", "wrapped key", "nonce", "ciphertext", "tag"]
)
@pytest.mark.parametrize("mask", [0x01, 0x80, 0xFF])
def test_tampering_with_any_byte_of_any_region_is_detected(
    ring: KeyRing, region: str, mask: int
) -> None:
    # Another key whose id is one bit away from the current one, so a flipped id names a real key.
    ring = KeyRing(
        "k1", {"k1": ring.current_kek, "k0": bytes(32), "j1": bytes(range(32))}, ring.index_key
    )
    blob = seal(SECRET, ring, AD).to_bytes()
    positions = _regions(blob)[region]
    assert len(positions) > 0
    for position in positions:
        tampered = bytearray(blob)
        tampered[position] ^= mask
        with pytest.raises(DecryptionError):
            open_(bytes(tampered), ring, AD)


@given(data=st.data())
def test_tampering_anywhere_is_detected(data: st.DataObject) -> None:
    ring = KeyRing("k1", {"k1": bytes(range(32))}, bytes(range(1, 33)))
    plaintext = data.draw(st.binary(max_size=200))
    blob = seal(plaintext, ring, AD).to_bytes()
    position = data.draw(st.integers(0, len(blob) - 1))
    mask = data.draw(st.integers(1, 255))
    tampered = bytearray(blob)
    tampered[position] ^= mask
    with pytest.raises(DecryptionError):
        open_(bytes(tampered), ring, AD)


def test_truncated_or_extended_values_do_not_open(ring: KeyRing) -> None:
    blob = seal(SECRET, ring, AD).to_bytes()
    for cut in (0, 1, 2, 10, 50, len(blob) - 1):
        with pytest.raises(DecryptionError):
            open_(blob[:cut], ring, AD)
    with pytest.raises(DecryptionError) as caught:
        open_(blob + b"\x00", ring, AD)
    assert caught.value.rule == "payload.authentication"


def test_wrong_associated_data_does_not_open(ring: KeyRing) -> None:
    sealed = seal(SECRET, ring, AD)
    other_row = associated_data("episode", "6f1c2d4e-0000-4000-8000-000000000002", "child")
    with pytest.raises(DecryptionError) as caught:
        open_(sealed, ring, other_row)
    assert caught.value.rule == "payload.authentication"
    assert SECRET.decode() not in str(caught.value)


def test_associated_data_parts_are_unambiguous() -> None:
    assert associated_data("ab", "c") != associated_data("a", "bc")
    assert associated_data("a", b"b") == associated_data(b"a", "b")
    assert associated_data() != associated_data("")


def test_a_different_ring_with_the_same_key_id_does_not_open(ring: KeyRing) -> None:
    sealed = seal(SECRET, ring, AD)
    with pytest.raises(DecryptionError) as caught:
        open_(sealed, KeyRing.generate(), AD)
    assert caught.value.rule == "kek.unwrap"


def test_unknown_version_is_refused(ring: KeyRing) -> None:
    blob = bytearray(seal(SECRET, ring, AD).to_bytes())
    blob[0] = 2
    with pytest.raises(DecryptionError) as caught:
        Sealed.from_bytes(bytes(blob))
    assert caught.value.rule == "sealed.version"


def test_rotation_rewraps_without_touching_the_ciphertext_and_old_key_can_go(
    ring: KeyRing,
) -> None:
    old = seal(SECRET, ring, AD)
    rotated = ring.with_new_key()
    assert open_(old, rotated, AD) == SECRET  # old rows still open before re-wrapping
    new = rewrap(old.to_bytes(), rotated)
    assert new.key_id == "k2"
    assert (new.nonce, new.ciphertext) == (old.nonce, old.ciphertext)
    assert new.wrapped_key != old.wrapped_key
    assert rewrap(new, rotated) is new  # idempotent: a rerun of `cafx keys rotate` is harmless
    retired = rotated.without_keys(["k1"])
    assert open_(new, retired, AD) == SECRET
    with pytest.raises(DecryptionError) as caught:
        open_(old, retired, AD)
    assert caught.value.rule == "kek.unknown"
    assert seal(SECRET, retired, AD).key_id == "k2"


def test_rewrap_refuses_a_tampered_wrapped_key(ring: KeyRing) -> None:
    sealed = seal(SECRET, ring, AD)
    broken = Sealed(sealed.key_id, bytes(40), sealed.nonce, sealed.ciphertext)
    with pytest.raises(DecryptionError) as caught:
        rewrap(broken, ring.with_new_key())
    assert caught.value.rule == "kek.unwrap"


@given(plaintext=st.binary(max_size=512))
def test_any_value_survives_two_rotations(plaintext: bytes) -> None:
    ring = KeyRing("k1", {"k1": bytes(range(32))}, bytes(range(1, 33)))
    sealed = seal(plaintext, ring, AD)
    later = ring.with_new_key().with_new_key()
    assert open_(rewrap(sealed, later), later.without_keys(["k1", "k2"]), AD) == plaintext


# -- names and blind indexes ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "tokens"),
    [
        ("Zoë-Mae", ("zoe", "mae")),
        ("Ó Briain", ("o", "briain")),
        ("O\u2019Brien", ("obrien",)),
        ("  SØRENSEN ", ("sorensen",)),
        ("Strauß", ("strauss",)),
        ("İlkay", ("ilkay",)),
        ("Łukasz J. Wójcik-Nowak", ("lukasz", "j", "wojcik", "nowak")),
        ("---", ()),
    ],
)
def test_names_fold_to_tokens(raw: str, tokens: tuple[str, ...]) -> None:
    assert name_tokens(raw) == tokens


@pytest.mark.parametrize(
    ("name", "code"),
    [
        # Soundex reference values (US National Archives), initial letter class folded to lower case.
        ("Robert", "r163"),
        ("Rupert", "r163"),
        ("Ashcraft", "a261"),
        ("Tymczak", "t522"),
        ("Pfister", "p236"),
        ("Honeyman", "h555"),
        # Initial-letter classes: spellings that differ at the start share a bucket.
        ("Ó Briain", "a165"),
        ("O'Brien", "a165"),
        ("OBrian", "a165"),
        ("Osman", "a255"),
        ("Usman", "a255"),
        ("Phillips", "f412"),
        ("Fillips", "f412"),
        ("Cohen", "k500"),
        ("Kohn", "k500"),
        ("Smith", "s530"),
        ("", ""),
    ],
)
def test_phonetic_key_vectors(name: str, code: str) -> None:
    assert phonetic_key(name) == code


_letters = st.text(alphabet="abcdefghijklmnopqrstuvwxyzéëöçñ", min_size=1, max_size=20)


@st.composite
def _spelling_variants(draw: st.DrawFn) -> tuple[str, str]:
    """A name and the same name re-cased, with separators and apostrophes inserted, decomposed."""
    name = draw(_letters)
    variant = []
    for char in name:
        variant.append(char.upper() if draw(st.booleans()) else char)
        variant.append(draw(st.sampled_from(["", "", " ", "-", "'", "\u2019", ". "])))
    return name, unicodedata.normalize(draw(st.sampled_from(["NFC", "NFD"])), "".join(variant))


@given(pair=_spelling_variants())
def test_skeleton_and_blind_indexes_ignore_case_spacing_punctuation_and_accents(
    pair: tuple[str, str],
) -> None:
    ring = KeyRing("k1", {"k1": bytes(range(32))}, bytes(range(1, 33)))
    name, variant = pair
    assert name_skeleton(variant) == name_skeleton(name)
    assert fold(fold(variant)) == fold(variant)
    for kind, a, b in (
        (IndexKind.NAME_DOB, NameDob(name, DOB), NameDob(variant, DOB.isoformat())),
        (IndexKind.FAMILY_NAME_KEY, name, variant),
    ):
        assert blind_index(kind, a, ring) == blind_index(kind, b, ring)


def test_blind_index_is_the_documented_hmac() -> None:
    index_key = bytes(range(32))
    ring = KeyRing("k1", {"k1": bytes(32)}, index_key)
    expected = hmac.new(index_key, b"nhs_number\x009434765919", hashlib.sha256).hexdigest()
    assert blind_index(IndexKind.NHS_NUMBER, "943 476 5919", ring) == expected
    name_dob = hmac.new(index_key, b"name_dob\x00obriain|2015-03-04", hashlib.sha256).hexdigest()
    assert blind_index("name_dob", NameDob("Ó Briain", "2015-03-04"), ring) == name_dob


@pytest.mark.parametrize(
    ("kind", "a", "b"),
    [
        (IndexKind.NHS_NUMBER, "943 476 5919", "9434765919"),
        (IndexKind.NHS_NUMBER, " 943-476-5919 ", "9434765919"),
        (IndexKind.UPN, "l 2012 3456 7890", UPN),
        (IndexKind.DOB, DOB, "2015-03-04"),
        (IndexKind.NAME_DOB, NameDob("Ó Briain", DOB), NameDob("O BRIAIN", "2015-03-04")),
        (IndexKind.FAMILY_NAME_KEY, "Ó Briain", "O'Brien"),
        (IndexKind.FAMILY_NAME_KEY, "O'Brien", "OBrian"),
    ],
)
def test_blind_index_is_stable_across_variants(
    ring: KeyRing, kind: IndexKind, a: str | dt.date | NameDob, b: str | dt.date | NameDob
) -> None:
    assert blind_index(kind, a, ring) == blind_index(kind, b, ring)


def test_blind_indexes_differ_for_different_values_kinds_and_keys(ring: KeyRing) -> None:
    values = {
        blind_index(IndexKind.NHS_NUMBER, NHS, ring),
        blind_index(IndexKind.NHS_NUMBER, NHS_OTHER, ring),
        blind_index(IndexKind.UPN, UPN, ring),
        blind_index(IndexKind.UPN, UPN_OTHER, ring),
        blind_index(IndexKind.DOB, DOB, ring),
        blind_index(IndexKind.DOB, dt.date(2015, 4, 3), ring),
        blind_index(IndexKind.NAME_DOB, NameDob("Smith", DOB), ring),
        blind_index(IndexKind.NAME_DOB, NameDob("Smyth", DOB), ring),
        blind_index(IndexKind.FAMILY_NAME_KEY, "Smith", ring),
        blind_index(IndexKind.FAMILY_NAME_KEY, "Jones", ring),
        blind_index(IndexKind.NHS_NUMBER, NHS, KeyRing.generate()),
    }
    assert len(values) == 11
    assert all(len(v) == 64 and int(v, 16) >= 0 for v in values)


@given(a=nhs_numbers(), b=nhs_numbers())
def test_distinct_nhs_numbers_get_distinct_indexes(a: str, b: str) -> None:
    ring = KeyRing("k1", {"k1": bytes(range(32))}, bytes(range(1, 33)))
    assert (blind_index("nhs_number", a, ring) == blind_index("nhs_number", b, ring)) == (a == b)


@given(upn=upns())
def test_upn_index_ignores_case_and_spacing(upn: str) -> None:
    ring = KeyRing("k1", {"k1": bytes(range(32))}, bytes(range(1, 33)))
    spaced = " ".join(upn[i : i + 4] for i in range(0, len(upn), 4)).lower()
    assert blind_index(IndexKind.UPN, spaced, ring) == blind_index(IndexKind.UPN, upn, ring)


def test_values_that_cannot_be_indexed_are_refused_without_echoing_them(ring: KeyRing) -> None:
    cases: list[tuple[IndexKind, str | dt.date | NameDob]] = [
        (IndexKind.NHS_NUMBER, "9434765918"),
        (IndexKind.UPN, "Q2012345678X"),
        (IndexKind.DOB, "04/03/2015"),
        (IndexKind.NAME_DOB, NameDob("--", DOB)),
        (IndexKind.NAME_DOB, "Smith"),
        (IndexKind.FAMILY_NAME_KEY, "'- "),
        (IndexKind.FAMILY_NAME_KEY, DOB),
    ]
    for kind, value in cases:
        with pytest.raises((IdentifierError, IndexValueError)) as caught:
            blind_index(kind, value, ring)
        for shown in ("9434765918", "Q2012345678X", "04/03/2015", "Smith"):
            assert shown not in str(caught.value)


def test_record_and_query_terms_meet_in_a_bucket(ring: KeyRing) -> None:
    record = Candidate(
        ref="child-1",
        given_names="Zoë-Mae",
        family_name="Ó Briain-Walsh",
        date_of_birth=DOB,
        nhs_number=NHS,
    )
    stored = set(record_terms(record, ring))
    assert {t.kind for t in stored} == {"nhs_number", "dob", "name_dob", "family_name_key"}
    # A misspelt query still shares a family-name bucket; a part of a double-barrelled name too.
    for family in ("O'Brien-Walsh", "Walsh", "Briain"):
        query = NameQuery(given_names="Zoe", family_name=family)
        shared = stored & set(query_terms(query, ring))
        assert {t.kind for t in shared} == {IndexKind.FAMILY_NAME_KEY}, family
    assert not stored & set(query_terms(NameQuery(family_name="Jones"), ring))
    by_number = set(query_terms(NameQuery(nhs_number="943 476 5919"), ring))
    assert {t.kind for t in by_number & stored} == {IndexKind.NHS_NUMBER}
    with pytest.raises(IdentifierError):
        query_terms(NameQuery(nhs_number="9434765918"), ring)


def test_candidate_from_child_carries_other_names_and_identifiers() -> None:
    child = Child.model_validate(
        {
            "given_names": "Robert James",
            "family_name": "Smith",
            "known_as": "Bobby",
            "previous_names": ["Robert Jones", "Brown"],
            "date_of_birth": DOB,
            "gender": Gender.MALE,
            "identifiers": {"nhs_number": NHS, "upn": UPN},
        }
    )
    candidate = Candidate.from_child("child-7", child)
    assert candidate.names == (
        PersonName("Robert James", "Smith"),
        PersonName("Bobby", "Smith"),
        PersonName("Robert", "Jones"),
        PersonName("Robert James", "Brown"),
    )
    assert (candidate.nhs_number, candidate.upn, candidate.date_of_birth) == (NHS, UPN, DOB)


# -- fuzzy matching ------------------------------------------------------------------------------


def _one(query: NameQuery, candidate: Candidate) -> Match:
    (match,) = match_candidates(query, [candidate], min_confidence=0.0)
    return match


def _person(
    given: str,
    family: str,
    dob: dt.date | None = DOB,
    *,
    nhs_number: str | None = None,
    upn: str | None = None,
) -> Candidate:
    return Candidate(
        ref=f"{given} {family}",
        given_names=given,
        family_name=family,
        date_of_birth=dob,
        nhs_number=nhs_number,
        upn=upn,
    )


def _query(
    given: str,
    family: str,
    dob: dt.date | None = DOB,
    *,
    nhs_number: str | None = None,
    upn: str | None = None,
) -> NameQuery:
    return NameQuery(
        given_names=given, family_name=family, date_of_birth=dob, nhs_number=nhs_number, upn=upn
    )


def test_diacritics_punctuation_and_irish_spelling_still_find_the_child() -> None:
    match = _one(_query("Zoë-Mae", "Ó Briain"), _person("Zoe Mae", "O'Brien"))
    assert match.basis is MatchBasis.NAME_DOB_FUZZY
    assert FOUND_THRESHOLD <= match.confidence < NAME_DOB_CONFIDENCE
    assert classify([match]) is MatchOutcome.FOUND


def test_the_same_names_once_folded_are_an_exact_name_and_dob_match() -> None:
    match = _one(_query("Zoë-Mae", "Ó Briain"), _person("ZOE MAE", "O-BRIAIN"))
    assert (match.basis, match.confidence, match.name_score) == (
        MatchBasis.NAME_DOB_EXACT,
        NAME_DOB_CONFIDENCE,
        1.0,
    )
    assert match.reasons == ("name.exact", "dob.exact")


@pytest.mark.parametrize(
    ("query", "record"),
    [
        (("Jonathan", "Smith"), ("Jonahtan", "Smith")),
        (("Jonathan", "Thompson"), ("Jonathan", "Thomspon")),
        (("Mohammed", "Ali"), ("Mohammad", "Ali")),
        (("Zoe", "O'Brien"), ("Zoe Mae", "O'Brien")),
        (("Amelia", "Smith"), ("Amelia", "Smith-Jones")),
        (("Mae Zoe", "Khan"), ("Zoe Mae", "Khan")),
    ],
)
def test_close_spelling_variants_with_the_same_birth_date_are_found(
    query: tuple[str, str], record: tuple[str, str]
) -> None:
    match = _one(_query(*query), _person(*record))
    assert match.basis is MatchBasis.NAME_DOB_FUZZY
    assert match.confidence >= FOUND_THRESHOLD


def test_a_transposition_in_a_short_name_is_a_possible_match() -> None:
    match = _one(_query("Sofia", "Khan"), _person("Sofai", "Khan"))
    assert POSSIBLE_MATCH <= match.confidence < FOUND_THRESHOLD


@pytest.mark.parametrize(
    ("nickname", "name"),
    [
        ("Bob", "Robert"),
        ("Bill", "William"),
        ("Kate", "Katherine"),
        ("Alex", "Alexander"),
        ("Sam", "Samantha"),
    ],
)
def test_nicknames_are_not_matched_unless_recorded(nickname: str, name: str) -> None:
    assert match_candidates(_query(nickname, "Smith"), [_person(name, "Smith")]) == []
    recorded = Candidate(
        ref="c", given_names=name, family_name="Smith", date_of_birth=DOB,
        other_names=(PersonName(nickname, "Smith"),),
    )  # fmt: skip
    (match,) = match_candidates(_query(nickname, "Smith"), [recorded])
    assert match.basis is MatchBasis.NAME_DOB_EXACT
    assert "name.other_name" in match.reasons


def test_a_different_birth_date_scores_low_and_is_not_reported() -> None:
    match = _one(_query("Zoe Mae", "O'Brien"), _person("Zoe Mae", "O'Brien", dt.date(2016, 7, 9)))
    assert match.confidence < POSSIBLE_MATCH / 2
    assert match.basis is MatchBasis.NAME_ONLY and "dob.conflict" in match.reasons
    assert (
        match_candidates(
            _query("Zoe Mae", "O'Brien"), [_person("Zoe Mae", "O'Brien", dt.date(2016, 7, 9))]
        )
        == []
    )


@pytest.mark.parametrize(
    "recorded",
    [dt.date(2015, 4, 3), dt.date(2015, 3, 5), dt.date(2015, 3, 14), dt.date(2051, 3, 4)],
)
def test_a_likely_typo_in_the_birth_date_is_possible_never_found(recorded: dt.date) -> None:
    match = _one(_query("Zoe Mae", "O'Brien"), _person("Zoe Mae", "O'Brien", recorded))
    assert "dob.near" in match.reasons
    assert POSSIBLE_MATCH <= match.confidence < FOUND_THRESHOLD


def test_names_without_a_birth_date_are_never_found() -> None:
    match = _one(_query("Zoe Mae", "O'Brien", None), _person("Zoe Mae", "O'Brien"))
    assert match.basis is MatchBasis.NAME_ONLY
    assert POSSIBLE_MATCH <= match.confidence < FOUND_THRESHOLD


def test_same_nhs_number_is_certain_even_when_names_differ() -> None:
    match = _one(
        _query("Bob", "Jones", None, nhs_number="943 476 5919"),
        _person("Robert", "Smith", nhs_number=NHS),
    )
    assert (match.confidence, match.basis) == (1.0, MatchBasis.NHS_NUMBER)


def test_a_conflicting_nhs_number_lowers_confidence_sharply() -> None:
    query = _query("Zoe Mae", "O'Brien", nhs_number=NHS)
    match = _one(query, _person("Zoe Mae", "O'Brien", nhs_number=NHS_OTHER))
    assert "nhs_number.conflict" in match.reasons
    assert match.confidence < 0.3
    assert match_candidates(query, [_person("Zoe Mae", "O'Brien", nhs_number=NHS_OTHER)]) == []


def test_same_upn_is_certain_unless_the_nhs_numbers_disagree() -> None:
    same = _one(_query("A", "B", None, upn=UPN.lower()), _person("Zoe", "Khan", upn=UPN))
    assert (same.confidence, same.basis) == (1.0, MatchBasis.UPN)
    mixed = _one(
        _query("Zoe", "Khan", upn=UPN, nhs_number=NHS),
        _person("Zoe", "Khan", upn=UPN, nhs_number=NHS_OTHER),
    )
    assert (mixed.confidence, mixed.basis) == (IDENTIFIER_DISAGREEMENT_CONFIDENCE, MatchBasis.UPN)
    assert classify([mixed]) is MatchOutcome.AMBIGUOUS


def test_a_temporary_upn_is_no_evidence_against() -> None:
    permanent = _one(_query("Zoe", "Khan", upn=UPN_OTHER), _person("Zoe", "Khan", upn=UPN))
    temporary = _one(_query("Zoe", "Khan", upn=UPN_TEMPORARY), _person("Zoe", "Khan", upn=UPN))
    assert "upn.conflict" in permanent.reasons and permanent.confidence < NAME_DOB_CONFIDENCE
    assert temporary.confidence == NAME_DOB_CONFIDENCE and "upn.conflict" not in temporary.reasons


def test_results_are_sorted_and_classified() -> None:
    query = _query("Oliver", "Smith")
    twins = [_person("Olivia", "Smith"), _person("Oliver", "Smith"), _person("Noah", "Jones")]
    matches = match_candidates(query, twins)
    assert [m.ref for m in matches] == ["Oliver Smith", "Olivia Smith"]
    assert matches[0].confidence > matches[1].confidence >= POSSIBLE_MATCH
    assert classify(matches) is MatchOutcome.FOUND  # the exact twin leads by the margin
    close = match_candidates(
        _query("Zoe", "O'Brien"), [_person("Zoe Mae", "O'Brien"), _person("Zoey", "O'Brien")]
    )
    assert len(close) == 2 and classify(close) is MatchOutcome.AMBIGUOUS
    same_name = match_candidates(
        query,
        [
            _person("Oliver", "Smith"),
            Candidate(ref="other", given_names="Oliver", family_name="Smith", date_of_birth=DOB),
        ],
    )
    assert classify(same_name) is MatchOutcome.AMBIGUOUS  # two children share name and birthday
    assert classify(match_candidates(query, [_person("Noah", "Jones")])) is MatchOutcome.NOT_FOUND
    assert classify([]) is MatchOutcome.NOT_FOUND


def test_a_query_needs_a_family_name_or_an_identifier() -> None:
    with pytest.raises(ValueError, match="family name"):
        NameQuery(given_names="Zoe", family_name=" - ")
    assert NameQuery(upn=UPN).family_name == ""


_REASONS = {
    "name.exact", "name.fuzzy", "name.other_name", "dob.exact", "dob.near", "dob.conflict",
    "dob.unknown", "nhs_number.match", "nhs_number.conflict", "upn.match", "upn.conflict",
}  # fmt: skip
_names = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=25)
_dobs = st.none() | st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2025, 12, 31))


@given(
    given_a=_names, family_a=_names, dob_a=_dobs, given_b=_names, family_b=_names, dob_b=_dobs,
    nhs_a=st.none() | nhs_numbers(), nhs_b=st.none() | nhs_numbers(),
)  # fmt: skip
def test_confidence_is_bounded_and_reasons_are_codes_not_values(
    given_a: str, family_a: str, dob_a: dt.date | None, given_b: str, family_b: str,
    dob_b: dt.date | None, nhs_a: str | None, nhs_b: str | None,
) -> None:  # fmt: skip
    assume(name_tokens(family_a) or nhs_a)
    query = NameQuery(
        given_names=given_a, family_name=family_a, date_of_birth=dob_a, nhs_number=nhs_a
    )
    candidate = Candidate(
        ref="r", given_names=given_b, family_name=family_b, date_of_birth=dob_b, nhs_number=nhs_b
    )
    match = _one(query, candidate)
    assert 0.0 <= match.confidence <= 1.0 and 0.0 <= match.name_score <= 1.0
    assert set(match.reasons) <= _REASONS


@given(given_names=_letters, family_name=_letters, dob=st.dates(max_value=dt.date(2025, 1, 1)))
def test_a_child_always_matches_their_own_record_exactly(
    given_names: str, family_name: str, dob: dt.date
) -> None:
    match = _one(
        _query(given_names.upper(), family_name, dob),
        Candidate(
            ref="self", given_names=given_names, family_name=family_name.title(), date_of_birth=dob
        ),
    )
    assert (match.basis, match.confidence) == (MatchBasis.NAME_DOB_EXACT, NAME_DOB_CONFIDENCE)
    assert classify([match]) is MatchOutcome.FOUND
