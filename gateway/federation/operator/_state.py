"""The operator's state file `federation.json`: the members as they will be published, and the last
metadata version signed (so the next one is always higher, DESIGN 3.1 "no rollback").

Members are stored as `directory.members.Member`, the very model the metadata carries, so whatever the
operator records is checked by the same rules a node applies when it reads the metadata.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from directory.members import Member

from ._files import Layout, write_file

__all__ = ["FederationState", "OperatorError", "describe_errors", "load_state", "save_state"]


class OperatorError(Exception):
    """An operator command refused (not initialised, unknown member, bad input...)."""


class FederationState(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    federation: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    version: Annotated[int, Field(ge=0, strict=True)] = 0
    members: list[Member] = Field(default_factory=list)

    def member(self, gss: str) -> Member:
        for member in self.members:
            if member.id == gss:
                return member
        raise OperatorError(f"{gss} is not a member (add it with add-member)")

    def with_member(self, updated: Member) -> FederationState:
        """The state with `updated` replacing the member of the same id, or added (sorted by id)."""
        others = [member for member in self.members if member.id != updated.id]
        members = sorted([*others, updated], key=lambda member: member.id)
        return self.model_copy(update={"members": members})


def describe_errors(exc: ValidationError) -> str:
    """Which fields failed and why, without echoing the values (they may be contact details)."""
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or 'value'}: {error['msg']}"
        for error in exc.errors()
    )


def load_state(layout: Layout) -> FederationState:
    if not layout.state.is_file():
        raise OperatorError(f"{layout.root} is not a federation directory (run init first)")
    try:
        return FederationState.model_validate_json(layout.state.read_bytes())
    except (OSError, ValidationError) as exc:
        raise OperatorError(f"cannot read {layout.state} ({type(exc).__name__})") from None


def save_state(layout: Layout, state: FederationState) -> None:
    # Re-validated on the way out: model_copy(update=...) does not run validators.
    try:
        checked = FederationState.model_validate(state.model_dump(mode="json"))
    except ValidationError as exc:
        raise OperatorError(
            f"the change would make the state invalid: {describe_errors(exc)}"
        ) from None
    write_file(layout.state, checked.model_dump_json(indent=2, exclude_none=True) + "\n")
