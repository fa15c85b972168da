"""Check a national episode against a `.facts.json` (the truth an example document was written from).

A facts file describes more than any one local format carries (a CSV register row has no assessment,
an eCAF export no TAC member telephones), so each format's test names the fact paths its documents do
not carry in `absent`; everything else must match exactly. `mismatches()` returns every difference, so
a failing test shows them all at once.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

from schemas import Episode, Practitioner

EXAMPLES = Path(__file__).resolve().parent.parent / "fixtures" / "examples"


def load_facts(path: Path) -> list[dict[str, Any]]:
    """Facts of one example: a list (one entry per episode header, for registers) or one dict."""
    facts = json.loads(path.read_text(encoding="utf-8"))
    return facts if isinstance(facts, list) else [facts]


def examples(format_name: str, suffix: str) -> list[Path]:
    return sorted((EXAMPLES / format_name).glob(f"*{suffix}"))


def facts_path(example: Path) -> Path:
    return example.with_name(example.stem + ".facts.json")


def _practitioner(p: Practitioner | None) -> dict[str, Any] | None:
    if p is None:
        return None
    return {
        "name": p.name,
        "role": p.role,
        "organisation": p.organisation,
        "agency_type": p.agency_type.value,
        "authority": p.authority,
        "telephone": p.telephone,
        "email": p.email,
    }


def _compare(path: str, want: Any, got: Any, absent: Collection[str]) -> Iterator[str]:
    if path in absent:
        return
    if isinstance(want, dict) and isinstance(got, dict):
        for key, value in want.items():
            yield from _compare(f"{path}.{key}", value, got.get(key), absent)
    elif (
        isinstance(want, list) and isinstance(got, list) and all(isinstance(w, dict) for w in want)
    ):
        if len(want) != len(got):
            yield f"{path}: {len(want)} expected, {len(got)} found"
            return
        for i, (w, g) in enumerate(zip(want, got, strict=True)):
            yield from _compare(f"{path}[{i}]", w, g, absent)
    elif want != got:
        yield f"{path}: expected {want!r}, found {got!r}"


def episode_facts(episode: Episode, child_index: int = 0) -> dict[str, Any]:
    """The episode, seen in the shape of a facts file (for the child at `child_index`)."""
    child = episode.child
    consent = episode.consents[0] if episode.consents else None
    assessment = episode.assessments[0] if episode.assessments else None
    address = child.address
    return {
        "authority": episode.home_authority,
        "local_ref": episode.local_ref,
        "state": episode.state.value,
        "children": {
            child_index: {
                "given_names": child.given_names,
                "family_name": child.family_name,
                "date_of_birth": child.date_of_birth and child.date_of_birth.isoformat(),
                "gender": child.gender.value,
                "ethnicity": child.ethnicity and child.ethnicity.value,
                "postcode": address and address.postcode,
                "nhs_number": child.identifiers.nhs_number,
                "upn": child.identifiers.upn,
            }
        },
        "parents": [
            {
                "name": p.name,
                "relationship": p.relationship,
                "parental_responsibility": p.parental_responsibility,
                "telephone": p.telephone,
            }
            for p in episode.parents_carers
        ],
        "address_lines": address.lines if address else None,
        "started_on": assessment and assessment.started_on.isoformat(),
        "completed_on": assessment
        and assessment.completed_on
        and assessment.completed_on.isoformat(),
        "assessor": _practitioner(assessment.assessor) if assessment else None,
        "reason": assessment and assessment.reason,
        "elements": sorted(
            (
                {"national": e.element.value, "strengths": e.strengths, "needs": e.needs}
                for e in (assessment.elements if assessment else [])
            ),
            key=lambda e: str(e["national"]),
        ),
        "consent": consent
        and {
            "given_on": consent.given_on.isoformat(),
            "method": consent.method.value,
            "given_by": [g.role.value for g in consent.given_by],
            "young_person_competent": consent.young_person_competent,
            "share_with": [a.agency_type and a.agency_type.value for a in consent.share_with],
            "excluded": [a.agency_type and a.agency_type.value for a in consent.excluded],
            "withdrawn_on": consent.withdrawn_on and consent.withdrawn_on.isoformat(),
        },
        "lead_professional": _practitioner(episode.lead_professional),
        "tac": [_practitioner(p) for p in episode.tac_members],
        "plan": [
            {
                "need": a.need,
                "action": a.action,
                "responsible": a.responsible,
                "due_on": a.due_on and a.due_on.isoformat(),
                "ecm_outcome": a.ecm_outcome and a.ecm_outcome.value,
            }
            for a in episode.delivery_plan
        ],
        "reviews": [
            {
                "held_on": r.held_on.isoformat(),
                "tac_meeting_held": r.tac_meeting_held,
                "progress": r.progress,
            }
            for r in episode.reviews
        ],
        "closure": episode.closure
        and {
            "closed_on": episode.closure.closed_on.isoformat(),
            "outcome": episode.closure.outcome.value,
        },
    }


def mismatches(
    episode: Episode, facts: dict[str, Any], child_index: int = 0, absent: Collection[str] = ()
) -> list[str]:
    """Every fact the format carries that the episode gets wrong (fact paths in `absent` skipped).

    Paths look like `consent.withdrawn_on`, `tac.telephone` (any TAC member), `elements`, `closure`.
    List entries are compared in order, except `elements`, compared sorted by national element.
    """
    got = episode_facts(episode, child_index)
    absent = set(absent)
    want = dict(facts)
    want["children"] = {child_index: facts["children"][child_index]}
    want["elements"] = sorted(
        (
            {"national": e["national"], "strengths": e["strengths"], "needs": e["needs"]}
            for e in facts.get("elements", [])
        ),
        key=lambda e: str(e["national"]),
    )
    if want.get("closure"):
        want["closure"] = {k: want["closure"][k] for k in ("closed_on", "outcome")}
    for key in ("dfe_la", "extras", "step_down"):
        want.pop(key, None)
    found = []
    for key, value in want.items():
        for problem in _compare(key, value, got.get(key), ()):
            # "tac.telephone" also skips "tac[3].telephone": compare without list indexes.
            bare = _strip_indexes(problem.split(":", 1)[0])
            if not any(bare == a or bare.startswith(a + ".") for a in absent):
                found.append(problem)
    return found


def _strip_indexes(path: str) -> str:
    out, depth = [], 0
    for ch in path:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif depth == 0:
            out.append(ch)
    return "".join(out)
