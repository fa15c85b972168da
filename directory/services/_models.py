"""Open Referral UK service records as pydantic models (the UK profile of HSDS 3).

Only the fields this node reads are typed; every model allows the others (`extra="allow"`), so a
record read from a borough's file keeps everything the standard lets it carry. The document that is
stored and exported is the JSON as received (checked by `validate_service`), never a re-dump of these
models: what comes in goes back out equal.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Address",
    "Attribute",
    "Contact",
    "CostOption",
    "Location",
    "Organization",
    "Phone",
    "Schedule",
    "Service",
    "ServiceArea",
    "ServiceAtLocation",
    "TaxonomyTerm",
]

Number = int | float  # int stays int: 12 comes back as 12, not 12.0


class _Oruk(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class TaxonomyTerm(_Oruk):
    id: str
    name: str
    description: str
    taxonomy: str | None = None
    term: str | None = None
    parent_id: str | None = None
    term_uri: str | None = None


class Attribute(_Oruk):
    id: str
    link_type: str | None = None
    link_id: str | None = None
    taxonomy_term_id: str | None = None
    taxonomy_term: TaxonomyTerm | None = None


class Address(_Oruk):
    id: str
    address_1: str
    city: str
    state_province: str
    postal_code: str
    country: str
    address_type: str


class Location(_Oruk):
    id: str
    location_type: str
    name: str | None = None
    latitude: Number | None = None
    longitude: Number | None = None
    addresses: list[Address] = Field(default_factory=list)


class ServiceAtLocation(_Oruk):
    id: str
    location: Location | None = None


class ServiceArea(_Oruk):
    id: str
    name: str | None = None
    extent: str | None = None
    extent_type: str | None = None


class Phone(_Oruk):
    id: str
    number: str


class Contact(_Oruk):
    id: str
    name: str | None = None
    title: str | None = None
    email: str | None = None
    phones: list[Phone] = Field(default_factory=list)


class Schedule(_Oruk):
    id: str
    freq: str | None = None
    byday: str | None = None
    opens_at: str | None = None
    closes_at: str | None = None
    description: str | None = None


class CostOption(_Oruk):
    id: str
    option: str | None = None
    amount: Number | None = None
    amount_description: str | None = None


class Organization(_Oruk):
    id: str
    name: str
    description: str


class Service(_Oruk):
    id: str
    name: str
    status: str
    description: str | None = None
    organization_id: str | None = None
    organization: Organization | None = None
    minimum_age: Number | None = None
    maximum_age: Number | None = None
    last_modified: str | None = None
    service_areas: list[ServiceArea] = Field(default_factory=list)
    service_at_locations: list[ServiceAtLocation] = Field(default_factory=list)
    schedules: list[Schedule] = Field(default_factory=list)
    cost_options: list[CostOption] = Field(default_factory=list)
    contacts: list[Contact] = Field(default_factory=list)
    attributes: list[Attribute] = Field(default_factory=list)

    def terms(self, taxonomy: str) -> list[tuple[int, TaxonomyTerm]]:
        """(position in `attributes`, term) for every term of one vocabulary."""
        return [
            (number, attribute.taxonomy_term)
            for number, attribute in enumerate(self.attributes)
            if attribute.taxonomy_term is not None and attribute.taxonomy_term.taxonomy == taxonomy
        ]
