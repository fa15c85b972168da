"""Reading the people of an EHA document: family members, the address, practitioners, authority."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from schemas import (
    Address,
    Child,
    Gender,
    Identifiers,
    ParentCarer,
    Practitioner,
    authority_by_dfe,
    is_gss_code,
    normalise_nhs_number,
    normalise_postcode,
    normalise_upn,
)

from .._base import Fate
from ._codes import (
    ADDRESS_KEYS,
    ADULT_KEYS,
    AGENCY_IN,
    CHILD_KEYS,
    ETHNICITY_IN,
    LEAD_KEYS,
    SEX_IN,
    WORKER_KEYS,
    adult_name,
)
from ._fields import EXT, FieldReader, fail, model_error

__all__ = ["PeopleReader"]


class PeopleReader(FieldReader):
    def authority(self, doc: dict[str, Any]) -> str:
        value = doc.get("authority")
        if isinstance(value, str):
            code = value.strip().upper()
            if is_gss_code(code):
                if code == value:
                    self.add("/authority", Fate.MAPPED, "home_authority")
                else:
                    self.add("/authority", Fate.TRANSFORMED, "home_authority", "text.strip")
                return code
            found = authority_by_dfe(value)
            if found is not None:
                self.add("/authority", Fate.TRANSFORMED, "home_authority", "authority.dfe_to_gss")
                return found.gss
        fail("/authority", "authority must be a GSS code (or a DfE LA number)")

    def practitioner(self, value: Any, at: str, target: str, *, lead: bool) -> Practitioner:
        """The worker (fullName) or the lead practitioner (name); team is the role, service the
        organisation. Neither says which authority the practitioner works for."""
        p = self.obj(value, at, "a practitioner")
        self.unknown(p, LEAD_KEYS if lead else WORKER_KEYS, at)
        name = self.required_text(p, "name" if lead else "fullName", at, f"{target}.name")
        try:
            return Practitioner(
                name=name,
                role=self.text(p, "team", at, f"{target}.role"),
                organisation=self.required_text(p, "service", at, f"{target}.organisation"),
                agency_type=self.required_code(
                    p,
                    "serviceType",
                    at,
                    f"{target}.agency_type",
                    AGENCY_IN,
                    "agency_type.upper_case",
                ),
                telephone=self.text(p, "phone", at, f"{target}.telephone"),
                email=self.text(p, "email", at, f"{target}.email"),
            )
        except ValidationError as exc:
            model_error(exc, at, {})

    def address(self, fam: dict[str, Any]) -> Address | None:
        """The family's address, which every child's episode carries."""
        value = fam.get("address")
        if value is None:
            if "address" in fam:
                self.add("/family/address", Fate.MAPPED, "child.address")
            return None
        at = "/family/address"
        a = self.obj(value, at, "address")
        self.unknown(a, ADDRESS_KEYS, at)
        lines = [
            line
            for key in ("line1", "line2", "line3")
            if (line := self.text(a, key, at, "child.address.lines")) is not None
        ]
        town = self.text(a, "town", at, "child.address.town")
        postcode = self.identifier(a, "postcode", at, "child.address.postcode", normalise_postcode)
        return Address(lines=lines, town=town, postcode=postcode)

    def child(
        self, m: dict[str, Any], at: str, address: Address | None
    ) -> tuple[Child, dict[str, Any]]:
        """A CHILD member, and what of it has no national home (youngCarer)."""
        self.unknown(m, CHILD_KEYS, at)
        given = self.required_text(m, "firstName", at, "child.given_names")
        family = self.required_text(m, "lastName", at, "child.family_name")
        born = self.date(m, "dob", at, "child.date_of_birth", future="dates.birth_in_future")
        gender = self.code(m, "sex", at, "child.gender", SEX_IN, "sex.eha", lower=True)
        kept: dict[str, Any] = {}
        if "youngCarer" in m:
            kept["youngCarer"] = m["youngCarer"]
            self.add_key(at, "youngCarer", Fate.EXTENDED, f"{EXT}.member.youngCarer")
        try:
            child = Child(
                given_names=given,
                family_name=family,
                date_of_birth=born,
                gender=gender or Gender.UNKNOWN,  # no sex recorded
                ethnicity=self.code(
                    m, "ethnicityCode", at, "child.ethnicity", ETHNICITY_IN, "ethnicity.cin_code"
                ),
                address=address,
                identifiers=Identifiers(
                    nhs_number=self.identifier(
                        m, "nhsNo", at, "child.identifiers.nhs_number", normalise_nhs_number
                    ),
                    upn=self.identifier(m, "upn", at, "child.identifiers.upn", normalise_upn),
                ),
            )
        except ValidationError as exc:
            model_error(exc, at, {})
        return child, kept

    def adult(self, m: dict[str, Any], at: str) -> ParentCarer:
        self.unknown(m, ADULT_KEYS, at)
        name = adult_name(
            self.text(m, "firstName", at, "parents_carers.name"),
            self.text(m, "lastName", at, "parents_carers.name"),
        )
        if not name:  # only blanks: keep them, the national schema only asks for a non-empty name
            name = " ".join(v for k in ("firstName", "lastName") if isinstance(v := m.get(k), str))
        if not name:
            fail(f"{at}/firstName", "an adult member needs a firstName or a lastName")
        try:
            return ParentCarer(
                name=name,
                relationship=self.required_text(
                    m, "relationship", at, "parents_carers.relationship"
                ),
                parental_responsibility=self.required_flag(
                    m, "parentalResponsibility", at, "parents_carers.parental_responsibility"
                ),
                telephone=self.text(m, "phone", at, "parents_carers.telephone"),
                email=self.text(m, "email", at, "parents_carers.email"),
            )
        except ValidationError as exc:
            model_error(exc, at, {})

    def refs(self, value: Any, where: str, known: Mapping[str, Any]) -> list[str]:
        """Person refs (appliesTo, givenBy): each must name a member."""
        if not isinstance(value, list):
            fail(where, "a list of person references is expected")
        for i, ref in enumerate(value):
            if not isinstance(ref, str) or ref not in known:
                fail(f"{where}/{i}", "refers to no member of family.members")
        return value
