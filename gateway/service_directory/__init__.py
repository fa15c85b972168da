"""The node's service directory (issue 7): services stored in the node's database, an in-memory
index kept in step with it, the search query read from a URL, and federated search.

    save_services, Saved, load_services,                          storage (`directory_services`)
    export_documents, generation
    LiveDirectory                                                 the index, reloaded when an import
                                                                  (by this process or the CLI)
                                                                  moves the generation
    parse_search                                                  query parameters -> Query (400s)
    search_page                                                   a Query's answer as an ORUK page
    federated_search                                              fan-out to every active member
"""

from ._federated import MemberAnswer, federated_search
from ._live import LiveDirectory, directory_context
from ._query import SearchRequest, parse_search
from ._render import hit_json, search_page
from ._store import Saved, export_documents, generation, load_services, save_services

__all__ = [
    "LiveDirectory",
    "MemberAnswer",
    "Saved",
    "SearchRequest",
    "directory_context",
    "export_documents",
    "federated_search",
    "generation",
    "hit_json",
    "load_services",
    "parse_search",
    "save_services",
    "search_page",
]
