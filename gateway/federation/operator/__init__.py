"""The federation operator's tooling (DESIGN 3.1): signing key, federation CA, members, metadata.

State lives in one directory (`cafx federation ... --dir`, default `var/federation`); its layout is
described in `_files.py`. Nodes receive `members/<GSS>/` and pin `operator-public.json`.

    init(dir, name)                          operator key + CA
    add_member(dir, gss, endpoint, name)     TLS certificate (URI SAN urn:caf:member:<GSS>) + signing key
    reissue_cert(dir, gss, endpoint=None)    a new TLS key and certificate (renewal, leak, new host),
                                             swapped in as a pair: the old one or the new, never half
    add_lead_contact / remove_lead_contact   the LARA list (protocol 003 §2)
    suspend / reinstate                      member status
    rotate_key(dir, gss, grace=7 days)       new signing key; the old one lives out the grace period
    sign(dir, out, validity=7 days)          metadata version + 1 (above any copy already published),
                                             signed compact JWS; warns of certificates ending soon
"""

from __future__ import annotations

from ._files import Layout
from ._operator import (
    DEFAULT_GRACE,
    DEFAULT_KEY_VALIDITY,
    DEFAULT_METADATA_VALIDITY,
    EXPIRY_WARNING,
    MAX_GRACE,
    MAX_METADATA_VALIDITY,
    Certificate,
    MemberFiles,
    Signed,
    add_lead_contact,
    add_member,
    init,
    load_operator_key,
    reinstate,
    reissue_cert,
    remove_lead_contact,
    rotate_key,
    sign,
    suspend,
)
from ._pki import create_ca, issue_member_certificate, member_uri
from ._state import FederationState, OperatorError, load_state

__all__ = [
    "DEFAULT_GRACE",
    "DEFAULT_KEY_VALIDITY",
    "DEFAULT_METADATA_VALIDITY",
    "EXPIRY_WARNING",
    "MAX_GRACE",
    "MAX_METADATA_VALIDITY",
    "Certificate",
    "FederationState",
    "Layout",
    "MemberFiles",
    "OperatorError",
    "Signed",
    "add_lead_contact",
    "add_member",
    "create_ca",
    "init",
    "issue_member_certificate",
    "load_operator_key",
    "load_state",
    "member_uri",
    "reinstate",
    "reissue_cert",
    "remove_lead_contact",
    "rotate_key",
    "sign",
    "suspend",
]
