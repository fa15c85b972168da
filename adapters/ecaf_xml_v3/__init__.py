"""ecaf-xml-v3: eCAF-style XML export, one episode per file (formats/README.md, "ecaf-xml-v3").

Namespace `urn:x-caf:ecaf:3`, root `CAFEpisode`. `to_national` reads one document into one national
episode with a fidelity report; `from_national` writes one episode back as eCAF would, restoring what
`extensions["ecaf-xml-v3"]` kept. See `_reader` and `_writer` for the mapping decisions.
"""

from ._adapter import ADAPTER, EcafXmlV3
from ._paths import FORMAT, NS

__all__ = ["ADAPTER", "FORMAT", "NS", "EcafXmlV3"]
