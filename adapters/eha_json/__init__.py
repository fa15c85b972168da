"""eha-json: an Early Help Assessment from a case system, one FAMILY per document.

How a family becomes episodes
-----------------------------
`family.members[]` holds children (role CHILD) and adults (PARENT, CARER). The document becomes ONE
national episode per child, in member order, all sharing `family_ref` (family.familyRef). Each
child's episode carries:

- `child`: that child (firstName, lastName, dob dd/mm/yyyy, sex, ethnicityCode, nhsNo, upn), with
  the FAMILY's address (the document has no per-child address);
- `parents_carers`: every adult of the family (name = firstName + " " + lastName);
- the family-level parts, the same in every episode: local_ref (assessmentId), home_authority,
  state (status), the assessment's dates, assessor (worker), reason, parent_comments (parentViews),
  the delivery plan, the lead professional, the closure;
- `assessments[0].elements`: the areas that apply to this child (an area whose appliesTo names no
  child at all is family-level and goes to every child), then every note (notes are family-level).
  `applies_to` keeps the area's person refs as written. A sibling's areas are NOT in this child's
  episode: an episode is disclosed on its own, under its own child's consent.
- `consents[0]`: the family's consent with only the givers that count for THIS child: every adult in
  givenBy (role parent_carer) and the child themself if in givenBy (role young_person). A sibling's
  own consent is not consent for this child (DESIGN 3.5), so an episode may have no consent
  statement. `youngPersonCompetent` is about the young person who gave consent: it is
  `young_person_competent` only in a statement a young person gave (None in a sibling's; with no
  young person among the givers at all, it is kept as written, in the family's patches).

Mappings: areas -> elements by an explicit table (HOME_ENVIRONMENT and FINANCE both go to
family_environment.housing_employment_financial); worries -> needs, goingWell -> strengths; a note
"<eCAF code>: text" -> that element's NEEDS (the examples' facts say so for every note).
serviceType / shareWith / doNotShareWith are upper-case agency types; status OPEN/CLOSED;
closure.reason NEEDS_MET, DISENGAGED, MOVED_LA, STEP_UP_CSC -> resolved_multi_agency,
consent_withdrawn, moved_authority, stepped_up.

Decisions worth knowing:
- The consent has no id: it is named "<assessmentId>:consent". `storage_agreed` is true: an obtained
  EHA consent is the family's agreement to record and hold the assessment. A consent with `obtained`
  not true is no statement at all; it is kept whole in extensions.
- A doNotShareWith entry that cannot be read makes the document fail (dropping an exclusion would
  widen sharing); an unreadable shareWith entry is only rejected (which narrows it). Likewise an
  unreadable withdrawnDate fails the document rather than leave the consent looking valid.
- An impossible optional date (dob, dateCompleted, plan `when`) is REJECTED at its JSON pointer and
  kept verbatim, as are a dob in the future and a dateCompleted before dateStarted, an NHS number or
  UPN failing its check, an unknown ethnicity or sex; an impossible required date (dateStarted,
  consent date, closure date) fails the document. No sex at all is gender `unknown`.
- A person ref in appliesTo or givenBy that names no member fails the document: a dangling ref
  cannot be placed in the right child's episode.
- A text or member name holding a control character XML cannot hold (C0 but tab, LF and CR) or
  DEL fails the document, at its JSON pointer with every other such text (rule
  `text.control_characters`): taken, it would fail only when written as national XML or eCAF, and
  a register would refuse it (`adapters._safe.json_text_problems`).

Lossless: what extensions["eha-json"] holds
-------------------------------------------
`from_national(all episodes of the family)` gives back the original document (same JSON values; key
order aside). Each episode's `extensions["eha-json"]`:

    personRef      this child's person ref
    member         {youngCarer?, patches?}   what of the child's member object has no national home
    elements       [{area: i, code, scale?, patches?} | {note: j, patches?}]   one per national
                   element, in order: where it came from (index in areas[] / notes[]), the area code
                   (HOME_ENVIRONMENT vs FINANCE), the 0-10 scale (no national home)
    areas          {"i": area}                    areas with no national element, kept as written
    family         the same in every episode of the family (refs and codes, no sibling's details):
        members        every person ref, in document order
        adults         [{personRef, role (PARENT/CARER), patches?}]   aligned with parents_carers
        consentGivenBy the givenBy refs as written (siblings included)
        consent        the consent object when it is no statement (not obtained, or no giver counts)
        notes          {"j": note}                notes with no eCAF code, kept as written
        customFields   as written
        patches        differences for the rest of the document
        seen           {part: CRC-32} the family-level parts as read, when there are several children
                       (`_shared`: which copy is written when the children's copies differ)

`patches` make the round trip exact without a memo per field: the reader renders what the writer
would emit and diffs the document against it (`_patch`): keys nobody told us about, keys written
null that the writer would leave out, identifiers with spaces, un-padded dates, "Mary Ann" / "Smith"
split differently from the writer's first-space split, a rejected value. Each patch is kept beside
the object it belongs to (a member, an area, a note, or the family), and only applies while the
national value is still the one read, so edits made on the national side win. Keys written from one
national value (an adult's firstName and lastName; the address) are patched as a group, whole or not
at all: a renamed adult does not keep half the old name, nor a family that moved its old line2.

from_national(episodes): the episodes are put in member order; members, areas and notes are merged
from all of them (an area is written once, however many children carry it). A family-level part
(reference, status and closure, the assessment's header, plan, lead, consent terms, address, each
adult, each shared area or note) is written from the children's copies: when they differ, the copy
changed on the national side wins, else the first child's; a withdrawn consent wins, and the family
stays open while any child's episode is open (rules and reasons in `_shared`). `EhaJson.write`
returns a warning naming the part and the rule (`from_national`'s bytes cannot carry it).
A subset of a family's episodes writes a document of those children only (refs to absent members
are dropped from appliesTo and givenBy).
Episodes from other formats (no extensions) are written from their national fields: refs P1, P2...
are made up, elements without an area become notes (strengths folded into the note text), gender
unknown/indeterminate becomes not_stated, potential -> OPEN, transferred/archived -> CLOSED, closure
outcomes without an EHA reason take the nearest (resolved_* -> NEEDS_MET, consent_overridden ->
STEP_UP_CSC), and what the format has no place for (TAC members, reviews, service requests, a second
assessment or consent statement, known_as, school, ULN, practitioner authority) is not written.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence

from schemas import Episode

from .._base import Translation, utc_now
from .._written import Written
from ..national import NATIONAL_JSON
from ._codes import NAME
from ._read import read
from ._write import write

__all__ = ["ADAPTER", "EhaJson", "Written"]

# Keys that only an EHA family document has; two of them in the head make it one.
_MARKERS = (b'"familyRef"', b'"assessmentId"', b'"personRef"', b'"appliesTo"', b'"goingWell"')


class EhaJson:
    name = NAME
    media_type = "application/json"
    many_per_document = True

    def detect(self, data: bytes) -> bool:
        """A JSON object naming two of the keys only an EHA family document has, and not a
        national episode (whose eha-json extensions hold some of them): that is decided as the
        national adapter decides it (`NationalJson.detect`: its top-level members, not a
        mention of the national schema in a value)."""
        head = data[:65536]
        start = head.lstrip(b"\xef\xbb\xbf \t\r\n")
        if not start.startswith(b"{") or sum(marker in head for marker in _MARKERS) < 2:
            return False
        return not NATIONAL_JSON.detect(data)

    def to_national(self, data: bytes, *, received_at: dt.datetime | None = None) -> Translation:
        return read(data, received_at or utc_now())

    def from_national(self, episodes: Sequence[Episode]) -> bytes:
        return self.write(episodes).data

    def write(self, episodes: Sequence[Episode]) -> Written:
        """`from_national`, with a warning for each family-level part the children's episodes
        hold different copies of (which copy was written, and by which rule)."""
        doc, warnings = write(episodes)
        # ASCII escapes: every value survives, even a string no UTF-8 encoder would take. One line:
        # json's C encoder only runs without indent, and the case system does not read layout.
        return Written(json.dumps(doc).encode("ascii"), warnings)


ADAPTER = EhaJson()
