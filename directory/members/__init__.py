"""Federation members: the operator's signed metadata and the questions a node asks of it (DESIGN 3.1).

    FederationMetadata / Member / SigningKey / LeadContact   the document (pydantic, frozen)
    sign_metadata, verify_metadata                           compact JWS (RFC 7515), RFC 9864 algs
    MemberDirectory                                          lookups over one verified copy
    MetadataSource                                           poll, verify, keep the last good copy,
                                                             fail closed after it expires
    metadata_location                                        a file or an https URL (http: loopback)
    MetadataKeeper / FileKeeper                              where the last good copy outlives a restart
    load_public_key                                          the operator key a node pins

Errors: `MetadataError(code)` (signature_invalid, expired, not_yet_valid, rollback, malformed,
unavailable) with `MetadataUnavailable` <- `MetadataExpired` for "nothing usable right now"; and
`MemberError` <- `MemberUnknown` / `MemberSuspended` / `KeyNotValid`, whose `code` is the federation
wire code (unknown_member, member_suspended, invalid_signature).
"""

from __future__ import annotations

from ._directory import KeyNotValid, MemberDirectory, MemberError, MemberSuspended, MemberUnknown
from ._keys import load_public_key
from ._models import (
    ALGORITHMS,
    FederationMetadata,
    GssCode,
    HttpsUrl,
    LeadContact,
    Member,
    MemberStatus,
    PublicKey,
    SigningKey,
    import_public_jwk,
)
from ._signed import (
    METADATA_TYPE,
    MetadataError,
    MetadataErrorCode,
    read_metadata,
    sign_metadata,
    verify_metadata,
)
from ._source import (
    FileKeeper,
    MetadataExpired,
    MetadataKeeper,
    MetadataSource,
    MetadataUnavailable,
    is_loopback,
    metadata_location,
)

__all__ = [
    "ALGORITHMS",
    "METADATA_TYPE",
    "FileKeeper",
    "FederationMetadata",
    "GssCode",
    "HttpsUrl",
    "KeyNotValid",
    "LeadContact",
    "Member",
    "MemberDirectory",
    "MemberError",
    "MemberStatus",
    "MemberSuspended",
    "MemberUnknown",
    "MetadataError",
    "MetadataErrorCode",
    "MetadataExpired",
    "MetadataKeeper",
    "MetadataSource",
    "MetadataUnavailable",
    "PublicKey",
    "SigningKey",
    "import_public_jwk",
    "load_public_key",
    "is_loopback",
    "metadata_location",
    "read_metadata",
    "sign_metadata",
    "verify_metadata",
]
