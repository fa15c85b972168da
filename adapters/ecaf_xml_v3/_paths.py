"""Names, tags and paths shared by the reader and the writer of eCAF v3 documents.

Two kinds of path are used. Report locations are XPaths into the document that was read, with the
namespace prefix left out (`/CAFEpisode/Review[2]/@tacHeld`); an index is given to every element that may
repeat in its parent, so a location names one element even when there is only one. Extension paths use
the same shape but count what the writer will write back (a rejected `Member` is not written, so the
`Member` after it moves up one), which is what `from_national` needs to put kept content back in place.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "FORMAT",
    "NS",
    "Q",
    "Q_LEN",
    "RECOGNISED_ATTRIBUTES",
    "REPEATABLE",
    "ROOT",
    "local_name",
    "step",
    "tag",
]

FORMAT: Final = "ecaf-xml-v3"
NS: Final = "urn:x-caf:ecaf:3"
Q: Final = "{" + NS + "}"
Q_LEN: Final = len(Q)
ROOT: Final = "/CAFEpisode"


def tag(name: str) -> str:
    """The Clark-notation tag of an eCAF element (`{urn:x-caf:ecaf:3}Name`)."""
    return Q + name


def local_name(clark: object) -> str:
    """`{ns}Name` -> `Name`, in any namespace (slicing, much faster than `etree.QName`). Comments
    and processing instructions, whose tag is not a string, have no name: ""."""
    if not isinstance(clark, str):
        return ""
    if clark.startswith(Q):
        return clark[Q_LEN:]
    return clark.rpartition("}")[2]


# Which children may repeat, by parent: these get an index in paths.
REPEATABLE: Final[dict[str, frozenset[str]]] = {
    "CAFEpisode": frozenset({"Assessment", "Consent", "Review"}),
    "Address": frozenset({"Line"}),
    "ParentsCarers": frozenset({"ParentCarer"}),
    "Assessment": frozenset({"Domain"}),
    "Domain": frozenset({"Element"}),
    "Consent": frozenset({"GivenBy"}),
    "SharingAgreedWith": frozenset({"Agency"}),
    "SharingExcluded": frozenset({"Agency"}),
    "TeamAroundChild": frozenset({"Member"}),
    "DeliveryPlan": frozenset({"Action"}),
}

# Attributes the adapter reads, by element. Any other attribute is kept in extensions, and an extension
# may never set one of these on the way back (it could otherwise change what a field says).
RECOGNISED_ATTRIBUTES: Final[dict[str, frozenset[str]]] = {
    "CAFEpisode": frozenset({"schemaVersion"}),
    "ParentCarer": frozenset({"parentalResponsibility"}),
    "Assessment": frozenset({"version", "started", "completed"}),
    "Domain": frozenset({"code"}),
    "Element": frozenset({"code"}),
    "Consent": frozenset({"id", "date", "method"}),
    "GivenBy": frozenset({"role", "name"}),
    "Agency": frozenset({"type"}),
    "Review": frozenset({"date", "tacHeld"}),
    "Closure": frozenset({"date", "outcome"}),
}


def step(name: str, index: int, repeatable: bool) -> str:
    """One path step: `Review[2]` for an element that may repeat, `Closure` otherwise."""
    return f"{name}[{index}]" if repeatable else name
