"""Adapter throughput: documents per second per core, full translation with validation, beside a
parse-only baseline (lxml / json.loads / csv.reader) of the same corpus in the same run.

The corpus is made from the example forms: each is translated once, then varied (reference, names) and
written back out by the format's own `from_national`, so documents look like the real exports.

Beside each translation, `validate_only` times `Episode.model_validate` of the episodes that
translation yields (as JSON values), and nothing else: every adapter ends by validating its episodes
with that model, so this is a ceiling no translation can pass (it does not even parse), and its ratio
to the parse-only baseline says how far the 10% target is reachable at all with the national model.
"""

from __future__ import annotations

import csv
import gc
import io
import json
from collections.abc import Callable
from functools import partial
from pathlib import Path

from lxml import etree

from adapters import Adapter, get_adapter
from schemas import Episode

from ._report import Figure, best_rates

EXAMPLES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "examples"
CORPUS_SIZE = 1_000
CSV_ROWS_PER_FILE = 100


def _vary(episode: Episode, n: int) -> Episode:
    child = episode.child.model_copy(update={"family_name": f"{episode.child.family_name}{n % 97}"})
    return episode.model_copy(
        update={"child": child, "local_ref": f"{episode.local_ref or 'REF'}-{n}"}
    )


def _parse_xml(data: bytes) -> object:
    return etree.fromstring(data)


def _parse_csv(data: bytes) -> object:
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))


def _records(parsed: object) -> int:
    """Records of a parsed register: its rows less the header."""
    if not isinstance(parsed, list):
        raise TypeError("a register parses to a list of rows")
    return len(parsed) - 1


def _corpus(format_name: str, source_format: str) -> list[bytes]:
    """At least CORPUS_SIZE documents of `format_name`, made from `source_format` examples."""
    source, target = get_adapter(source_format), get_adapter(format_name)
    seeds = [
        source.to_national(p.read_bytes()).episodes
        for p in sorted((EXAMPLES / source_format).iterdir())
        if not p.name.endswith(".facts.json")
    ]
    documents: list[bytes] = []
    n = 0
    while len(documents) < CORPUS_SIZE:
        for episodes in seeds:
            if format_name == "caf-register-csv":
                rows = [_vary(e, n + i) for i in range(CSV_ROWS_PER_FILE) for e in episodes]
                documents.append(target.from_national(rows))
            elif target.many_per_document:
                documents.append(target.from_national([_vary(e, n) for e in episodes]))
            else:
                documents += [target.from_national([_vary(e, n)]) for e in episodes]
            n += 1
    return documents


# format -> (examples it is made from, parse-only baseline, baseline name)
FORMATS: dict[str, tuple[str, Callable[[bytes], object], str]] = {
    "ecaf-xml-v3": ("ecaf-xml-v3", _parse_xml, "lxml.etree.fromstring"),
    "eha-json": ("eha-json", json.loads, "json.loads"),
    "csc-closure-xml": ("csc-closure-xml", _parse_xml, "lxml.etree.fromstring"),
    "caf-register-csv": ("caf-register-csv", _parse_csv, "csv.reader"),
    "national-json": ("ecaf-xml-v3", json.loads, "json.loads"),
    "national-xml": ("ecaf-xml-v3", _parse_xml, "lxml.etree.fromstring"),
}
TARGETS = {"ecaf-xml-v3": 3_000.0}


def _translate_all(adapter: Adapter, corpus: list[bytes], per_record: bool) -> int:
    total = 0
    for data in corpus:
        translation = adapter.to_national(data)
        total += len(translation.episodes) if per_record else 1
    return total


def _validate_all(documents: list[list[dict[str, object]]], per_record: bool) -> int:
    total = 0
    for episodes in documents:
        for episode in episodes:
            Episode.model_validate(episode)
        total += len(episodes) if per_record else 1
    return total


def _parse_all(parse: Callable[[bytes], object], corpus: list[bytes], per_record: bool) -> int:
    # Records are counted as parsed, as the translation counts its episodes: a register made of a
    # seed of several rows holds CSV_ROWS_PER_FILE times that many.
    total = 0
    for data in corpus:
        parsed = parse(data)
        total += _records(parsed) if per_record else 1
    return total


def run() -> list[Figure]:
    figures = []
    for format_name, (source_format, parse, baseline_name) in FORMATS.items():
        corpus = _corpus(format_name, source_format)
        adapter = get_adapter(format_name)
        # As JSON values (dates and ids as strings), as an adapter's drafts mostly hold them.
        dumped = [
            [e.model_dump(mode="json") for e in adapter.to_national(d).episodes] for d in corpus
        ]
        # What is alive now (the corpus, the seeds' models, every module) lives for the whole run:
        # out of the collector's sight, so a collection scans what the work itself allocates, for
        # the translation and the baseline alike (as in a long-running node, whose heap is steady).
        gc.collect()
        gc.freeze()
        # Count what a document yields: for registers that is records, for the others documents.
        per_record = format_name == "caf-register-csv"

        baseline, value, ceiling = best_rates(
            [
                partial(_parse_all, parse, corpus, per_record),
                partial(_translate_all, adapter, corpus, per_record),
                partial(_validate_all, dumped, per_record),
            ]
        )
        unit = "records/s" if per_record else "docs/s"
        target = TARGETS.get(format_name)
        verdict = f">= {target:,.0f} {unit}" if target else ">= 0.1 x baseline"
        met = (value >= target) if target else (value >= 0.1 * baseline)
        figures.append(
            Figure(
                name=f"adapt.{format_name}.to_national",
                value=value,
                unit=unit,
                baseline_name=f"parse_only.{format_name}.{baseline_name}",
                baseline_value=baseline,
                target=f"{verdict}: {'met' if met else 'MISSED'} (n={len(corpus)})",
            )
        )
        figures.append(
            Figure(
                name=f"validate_only.{format_name}.Episode.model_validate",
                value=ceiling,
                unit=unit,
                baseline_name=f"parse_only.{format_name}.{baseline_name}",
                baseline_value=baseline,
                target="a ceiling: the translation validates these same episodes",
            )
        )
        del dumped
        gc.unfreeze()  # the next format's corpus replaces this one
    return figures
