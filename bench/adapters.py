"""Adapter throughput: documents per second per core, full translation with validation, beside a
parse-only baseline (lxml / json.loads / csv.reader) of the same corpus in the same run.

The corpus is made from the example forms: each is translated once, then varied (reference, names) and
written back out by the format's own `from_national`, so documents look like the real exports.

Beside each translation, `validate_only` times `Episode.model_validate` of the episodes that
translation yields (as JSON values), and nothing else: every adapter ends by validating its episodes
with that model, so this is a ceiling no translation can pass (it does not even parse), and its ratio
to the parse-only baseline says how far the 10% target is reachable at all with the national model.

`cafx adapt` on a register of about 10 MB (to national JSON, in a directory) is measured for its peak
memory, each in a fresh process, beside a process that only holds the same file parsed by
`csv.reader`: the command reads a register row by row and writes each episode as it comes.
"""

from __future__ import annotations

import csv
import gc
import io
import json
import subprocess
import sys
import tempfile
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
LARGE_REGISTER_BYTES = 10_000_000

# Run in a fresh process; prints its peak resident memory in kB. Not `ru_maxrss`, which a process
# started by this one inherits across exec (it would report this process's peak, were it higher).
_PEAK = (
    "import re; status = open('/proc/self/status').read()\n"
    "print(re.search(r'VmHWM:\\s+(\\d+) kB', status).group(1))"
)
_CSV_ONLY = (
    "import csv, sys; rows = list(csv.reader(open(sys.argv[1], newline='', encoding='utf-8-sig')))"
)
_ADAPT = (
    "import sys; from gateway.cli import cli\n"
    "try: cli(['adapt', '--out', sys.argv[2], sys.argv[1]])\n"
    "except SystemExit as exit: assert exit.code == 0, exit.code"
)


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


def _peak_kb(program: str, *args: str) -> int:
    done = subprocess.run(  # noqa: S603 - this Python, our own programs
        [sys.executable, "-c", f"{program}\n{_PEAK}", *args],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(done.stdout.split()[-1])


def _large_register_memory() -> Figure:
    """Peak memory of `cafx adapt` over a register of LARGE_REGISTER_BYTES, in megabytes."""
    register = get_adapter("caf-register-csv")
    seeds = register.to_national((EXAMPLES / "caf-register-csv" / "register-101.csv").read_bytes())
    one = len(register.from_national(seeds.episodes[:1]))  # a header and a row, as a size
    copies = LARGE_REGISTER_BYTES // (one // 2) // len(seeds.episodes) + 1
    many = [_vary(e, n) for n in range(copies) for e in seeds.episodes]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "register.csv"
        path.write_bytes(register.from_national(many))
        del many
        size_mb = path.stat().st_size / 1e6
        baseline = _peak_kb(_CSV_ONLY, str(path)) / 1e3
        value = _peak_kb(_ADAPT, str(path), str(Path(folder) / "out")) / 1e3
    return Figure(
        name="adapt.caf-register-csv.cafx_adapt.peak_memory",
        value=value,
        unit="MB",
        baseline_name="parse_only.caf-register-csv.csv.reader.peak_memory",
        baseline_value=baseline,
        target=f"none set; a {size_mb:.0f} MB register, lower is better",
    )


def run() -> list[Figure]:
    figures = [_large_register_memory()]
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
