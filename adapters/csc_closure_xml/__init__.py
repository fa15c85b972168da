"""`csc-closure-xml`: children's social care closing summary (ICS), the step-down document.

Protocol 001 §3: when social care closes a case and the family still has needs, its closing summary
"takes the place of the CAF assessment" and registers a *potential* CAF. So every document becomes one
episode with `state = potential` and `source.step_down = csc`, and no `closure` (the CAF has not been
closed; the social care case has).

Where each part goes, and why:
- `Case/CaseNumber` -> `local_ref` (the source system's reference: the social care case number).
- `Case/LA` (GSS code) -> `home_authority`; required, a document without it is refused.
- `Child`: `Name/Given`, `Name/Family`, `BirthDate` (ISO; an `xs:date` time zone, `Z` or `+01:00`,
  is dropped, reported transformed `date.timezone_dropped`, and not written back), `NHSNo`, `UPN`,
  `Ethnicity` (CIN codes), `Postcode` (-> `address.postcode`, no lines: the summary gives none) map
  to `child`. `Sex` is a CIN code: 1 male, 2 female, 9 indeterminate, and 0 "not recorded" ->
  `unknown`, not `not_stated`: in the NHS Data Dictionary "not known" is "not recorded", while "not
  stated" means the person was asked and declined, which a 0 does not say. Written back, both
  `unknown` and `not_stated` become 0.
  An optional value that fails its check (an NHS number's checksum, a birth date in the future) is
  REJECTED in the report and left out of the national fields, but kept as written in extensions
  (`Child/<element>`, reported EXTENDED with rule `extension.rejected_value` at the same place) and
  written back in its place, unless the national side has a value there by then. A missing or
  invalid required one (names, Sex, LA) refuses the document.
- `ContinuingProfessionals/Professional` with a Name, an Agency and a national AgencyType ->
  `tac_members` (organisation = Agency). One lacking any of those cannot be a valid practitioner and
  is kept whole in extensions; nothing is invented for it.
- `PreferredLeadProfessional` is only a name. A national lead professional needs an organisation and
  an agency type, so the name becomes `lead_professional` only when it names exactly one continuing
  professional, whose organisation and type the document gives (001 §3: one of them usually takes
  the TAC on, "possibly the LP preference identified by the family"; on a potential episode it is a
  preference until the step-down TAC confirms it). Otherwise it stays in extensions.
- Extensions, because no national field can hold them without inventing data:
  `SocialWorker`, `InvolvementReason`, `Strengths`, `UnmetNeeds` (with their eCAF element codes) would
  make an Assessment (assessor, reason, elements), but an Assessment needs `started_on` and an
  assessor's `organisation`, and the summary has neither (a Team is not an organisation, ClosedOn is
  not the start of anything). `FamilyPriorities` is a need without the action and responsible person a
  PlanAction requires. `ConsentToShare` (@given @date @by) lacks the giver's name, the method and
  the storage agreement a ConsentStatement requires, so the episode carries no national consent and
  nothing is disclosed on its strength until the CAF register records one: safer than guessing.
  A summary without consent given (001 §3 says it always has it) gets a warning.
  `ClosureReason/@code` (the CIN "RC" code of the social care case), `ServicesProvided` and
  `ClosedOn` belong to the social care case, not to the CAF.
  Unknown elements and attributes, anywhere, are kept too. Unmet needs whose element code eCAF does not
  know are kept, with a warning.
- Extensions follow xmltodict's convention (see `_tree.py`) and mirror the document, keyed by element
  local name: `{"Case": {"SocialWorker": {...}}, "UnmetNeeds": {"Need": [{"@element": ..., "#text":
  ...}]}, "ConsentToShare": {"@given": ..., "@date": ..., "@by": ...}, ...}`; `#tac_members` holds
  what a mapped professional carried beyond Name, Agency and AgencyType, each entry with the Name
  and Agency it was read with: it is written back only onto a TAC member with that name and
  organisation (the national side may remove or reorder members; one person's details must never
  land on another), and dropped when none has. Entries kept by position, before they named anyone,
  are used only while the TAC has as many members as entries.

Reading tolerates any prefix, a default namespace, children left in no namespace, any element order,
BOM, CRLF, declared encodings (ISO-8859-1), CDATA, comments and whitespace around values. Writing
gives the examples' shape: default namespace, root children one a line, the examples' order.
An episode that did not come from this format is written with what has a home here (child, case
number, authority, TAC members, lead professional's name); the rest of it has none.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from schemas import Episode

from .._base import AdapterError, FidelityReport, Translation, utc_now
from .._safe import xml_root_is
from ._codes import ECAF_ELEMENTS, FORMAT, GENDER_FROM_CIN, GENDER_TO_CIN, NS
from ._read import read
from ._write import write

__all__ = ["ADAPTER", "ECAF_ELEMENTS", "GENDER_FROM_CIN", "GENDER_TO_CIN", "NS", "CscClosureXml"]


class CscClosureXml:
    name = FORMAT
    media_type = "application/xml"
    many_per_document = False

    def detect(self, data: bytes) -> bool:
        """Is the root element `ClosingSummary` in the closure namespace? (Not a mention of
        either in a comment, a text or another format's value.)"""
        return xml_root_is(data, NS, "ClosingSummary")

    def to_national(self, data: bytes, *, received_at: dt.datetime | None = None) -> Translation:
        return read(data, received_at or utc_now(), FidelityReport(FORMAT))

    def from_national(self, episodes: Sequence[Episode]) -> bytes:
        if len(episodes) != 1:
            raise AdapterError(
                "unsupported_format", f"a closing summary holds one episode, not {len(episodes)}"
            )
        return write(episodes[0])


ADAPTER = CscClosureXml()
