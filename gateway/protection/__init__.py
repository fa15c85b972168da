"""Personal data at rest and finding a child (DESIGN 4; issue 5; protocol 3.4 existence checks).

Pure logic over bytes; storage puts the results in columns:

- `KeyRing`: key-encryption keys (KEKs) by id, one current, and the blind-index key; loaded from a
  key file or the `CAFX_KEYS_JSON` environment variable (same JSON).
- `seal` / `open_` / `rewrap`: envelope encryption, AES-256-GCM under a per-value data key wrapped
  with AES Key Wrap (RFC 3394); `Sealed.to_bytes()` is what a column stores.
- `blind_index`, `record_terms`, `query_terms`: HMAC-SHA256 indexes of normalised identifiers, so
  look-ups need no plaintext identifier column.
- `match_candidates`, `judge` (`classify`): rapidfuzz scoring of the decrypted candidates, and the
  found / not_found / ambiguous answer.

Rotating KEKs (`cafx keys rotate`), in this order:

1. `ring.with_new_key(current=False)` (`--stage`), written with `write_keyfile(...,
   overwrite=True)` and deployed to EVERY replica, then `ring.with_current(ring.staged())`
   (`--promote`), written and deployed (old keys stay in the ring, so nothing breaks while some
   replicas lag; a replica that meets a row under a key it has not got answers a search 503
   `not_ready`, never `not_found`);
2. for each row whose key id is not `ring.current`: store `rewrap(blob, ring).to_bytes()`
   (idempotent, so an interrupted run is simply repeated);
3. when no row names an old key id: `ring.without_keys([...])`, written and deployed again.

The blind-index key does not rotate (see `_keys`): changing it is a re-indexing migration, and
`KeyRing.index_fingerprint()` stored beside the indexes lets a node refuse to start on the wrong key.
"""

from __future__ import annotations

from ._blind import IndexKind, IndexValueError, NameDob, blind_index, normalise_for_index
from ._envelope import SEALED_VERSION, Sealed, associated_data, open_, rewrap, seal
from ._errors import DecryptionError, KeyMaterialError, ProtectionError
from ._keys import KEY_BYTES, KEYRING_FORMAT, KeyRing, generate_keyfile, write_keyfile
from ._matching import (
    DOB_CONFLICT_FACTOR,
    DOB_NEAR_FACTOR,
    DOB_UNKNOWN_FACTOR,
    FOUND_MARGIN,
    FOUND_THRESHOLD,
    IDENTIFIER_DISAGREEMENT_CONFIDENCE,
    NAME_DOB_CONFIDENCE,
    NHS_CONFLICT_FACTOR,
    POSSIBLE_MATCH,
    UPN_CONFLICT_FACTOR,
    Candidate,
    Match,
    MatchBasis,
    MatchOutcome,
    NameQuery,
    PersonName,
    Verdict,
    classify,
    has_letters,
    judge,
    match_candidates,
)
from ._names import fold, name_skeleton, name_tokens, phonetic_key
from ._terms import IndexTerm, query_terms, record_terms

__all__ = [
    "DOB_CONFLICT_FACTOR",
    "DOB_NEAR_FACTOR",
    "DOB_UNKNOWN_FACTOR",
    "FOUND_MARGIN",
    "FOUND_THRESHOLD",
    "IDENTIFIER_DISAGREEMENT_CONFIDENCE",
    "KEYRING_FORMAT",
    "KEY_BYTES",
    "NAME_DOB_CONFIDENCE",
    "NHS_CONFLICT_FACTOR",
    "POSSIBLE_MATCH",
    "SEALED_VERSION",
    "UPN_CONFLICT_FACTOR",
    "Candidate",
    "DecryptionError",
    "IndexKind",
    "IndexTerm",
    "IndexValueError",
    "KeyMaterialError",
    "KeyRing",
    "Match",
    "MatchBasis",
    "MatchOutcome",
    "NameDob",
    "NameQuery",
    "PersonName",
    "ProtectionError",
    "Sealed",
    "associated_data",
    "blind_index",
    "Verdict",
    "classify",
    "has_letters",
    "fold",
    "generate_keyfile",
    "judge",
    "match_candidates",
    "name_skeleton",
    "name_tokens",
    "normalise_for_index",
    "open_",
    "phonetic_key",
    "query_terms",
    "record_terms",
    "rewrap",
    "seal",
    "write_keyfile",
]
