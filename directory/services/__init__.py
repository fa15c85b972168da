"""The service directory (protocol 003 §5): each authority's Family Information Service records in
Open Referral UK JSON, who may use each service, and search over them.

    Service, Organization, Location, ...        the ORUK record (pydantic; unknown fields kept)
    Access, access_of, access_attributes        universal | residents_only | cross_borough_protocol,
                                                carried as `cafx-access` taxonomy terms
    Child, Verdict, eligibility,                may a child living in one borough and at school in
    parse_eligible_for                          another use a service, and why
    read_services, list_page, page_problems,    ORUK JSON in (rejections located by JSON pointer)
    service_problems, record_count,             and out, checked against the published schemas;
    UnusableFile, is_service_id                 a file of no known shape; the canonical service id
    ServiceIndex, Query, Hit, SearchResult      in-memory search: text, taxonomy, ages, distance
    judge                                       a member's records filtered and scored as the index
                                                would its own (merging)
    district_of, locate_postcode, haversine_m   London postcode districts and distances
    generate_services                           plausible demo services for a borough (seeded)
"""

from __future__ import annotations

from ._access import (
    ACCESS_TAXONOMY,
    MEMBER_TAXONOMY,
    PROTOCOL_TAXONOMY,
    Access,
    AccessError,
    AccessKind,
    access_attributes,
    access_of,
)
from ._eligibility import Child, Verdict, eligibility, parse_eligible_for
from ._generate import BOROUGH_DISTRICTS, generate_services
from ._geo import district_centroids, district_of, haversine_m, locate_postcode
from ._index import Hit, Query, SearchResult, ServiceIndex, judge
from ._models import (
    Address,
    Attribute,
    Contact,
    CostOption,
    Location,
    Organization,
    Phone,
    Schedule,
    Service,
    ServiceArea,
    ServiceAtLocation,
    TaxonomyTerm,
)
from ._oruk import (
    Rejected,
    ServiceRecord,
    UnusableFile,
    is_service_id,
    list_page,
    page_problems,
    read_services,
    record_count,
    service_problems,
    stored_record,
)

__all__ = [
    "ACCESS_TAXONOMY",
    "BOROUGH_DISTRICTS",
    "MEMBER_TAXONOMY",
    "PROTOCOL_TAXONOMY",
    "Access",
    "AccessError",
    "AccessKind",
    "Address",
    "Attribute",
    "Child",
    "Contact",
    "CostOption",
    "Hit",
    "Location",
    "Organization",
    "Phone",
    "Query",
    "Rejected",
    "Schedule",
    "SearchResult",
    "Service",
    "ServiceArea",
    "ServiceAtLocation",
    "ServiceIndex",
    "ServiceRecord",
    "TaxonomyTerm",
    "UnusableFile",
    "Verdict",
    "access_attributes",
    "access_of",
    "district_centroids",
    "district_of",
    "eligibility",
    "generate_services",
    "haversine_m",
    "is_service_id",
    "judge",
    "list_page",
    "locate_postcode",
    "page_problems",
    "parse_eligible_for",
    "read_services",
    "record_count",
    "service_problems",
    "stored_record",
]
