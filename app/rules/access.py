"""Who may work on a case: the rule the unit of work enforces, and the console asks before
it shows a form (so nobody types what will be refused)."""

from __future__ import annotations


def may_work_on(supervising: bool, assignee: object, me: object) -> bool:
    """A supervisor or admin works on any case; anyone else on an unassigned case or their
    own. `assignee` and `me` are the same kind of key (ids, or handles)."""
    return supervising or assignee is None or assignee == me


def not_yours(ref: str, owner: str, verb: str) -> str:
    """Why a person who may not work on case `ref` (assigned to `owner`) may not `verb` it."""
    return f"{ref} is assigned to {owner}; only its assignee or a supervisor may {verb} it"
