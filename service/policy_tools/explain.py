"""Readable traces of a decision: the subject, the ancestor chain, every assignment on it, the deciding clause."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from service.policy.engine import PolicyEngine
from service.policy.facts import Binding, Decision, Subject
from service.policy.store import is_live

Label = Callable[[str], str]


def explain(
    engine: PolicyEngine,
    subject: Subject,
    permission: str,
    entity: str | None,
    now: datetime,
    *,
    entity_label: Label = str,
    subject_label: str | None = None,
) -> tuple[Decision, list[str]]:
    """Decide, and describe how the decision was reached.

    Args:
        engine: The engine holding the rules and facts.
        subject: Who asks.
        permission: Permission asked for.
        entity: Uuid of the target entity, or None.
        now: Time of the question.
        entity_label: Turns an entity uuid into a readable name.
        subject_label: How to name the subject (default: ``user <id>``).

    Returns:
        The decision and the lines of its trace.
    """
    decision = engine.decide(subject, permission, entity, now)
    name = subject_label or f"user {subject.user_id}"

    def describe(uuid: str) -> str:
        fact = engine.entity(uuid)
        return f"{entity_label(uuid)} ({fact.type})" if fact else f"{entity_label(uuid)} (unknown)"

    target = describe(entity) if entity is not None else "(no entity)"
    lines = [
        f"{'ALLOW' if decision.allowed else 'DENY'}  {name}  {permission}  on {target}",
        f"  subject:   user {subject.user_id}{' (staff)' if subject.is_staff else ''}",
    ]
    if subject.token is not None:
        token = subject.token
        bound = ", ".join(sorted(_binding_label(b, entity_label) for b in token.bindings)) or "nothing (unrestricted)"
        lines.append(f"  token:     scopes {', '.join(sorted(token.scopes)) or '(none)'}; bound to {bound}")
    chain = engine.ancestors(entity) if entity is not None else []
    if chain:
        lines.append(f"  ancestors: {' <- '.join(describe(node) for node in chain)}")
    lines.extend(_assignment_lines(engine, subject.user_id, permission, chain, now, decision, describe))
    if not decision.allowed and decision.rule:
        lines.append(f"  failed:    {decision.rule}")
    lines.append(f"  clause:    {decision.clause}")
    lines.append(f"  reason:    {decision.reason}")
    return decision, lines


def _binding_label(binding: Binding, entity_label: Label) -> str:
    deleted = ", deleted: binds nothing" if binding.deleted else ""
    return f"{binding.type} {entity_label(binding.uuid)}{deleted}"


def _assignment_lines(
    engine: PolicyEngine,
    user_id: int,
    permission: str,
    chain: list[str],
    now: datetime,
    decision: Decision,
    describe: Label,
) -> list[str]:
    """One line per assignment of the user on the chain: live or expired, and whether its role grants it."""
    lines = []
    for node in chain:
        for assignment in engine.held_on(user_id, node):
            rule = engine.grant_rule(assignment.role, permission)
            expiry = f"until {assignment.expires_at:%Y-%m-%d %H:%M}" if assignment.expires_at else "no expiry"
            if not is_live(assignment, now):
                verdict = "expired: counts for nothing"
            elif rule is None:
                verdict = f"does not grant {permission}"
            else:
                chosen = assignment.uuid == decision.assignment
                verdict = f"grants {permission} [{rule}]{'  <- decided' if chosen else ''}"
            lines.append(
                f"    on {describe(node)}: {assignment.role} (assignment {assignment.uuid}, {expiry}) {verdict}"
            )
    if lines:
        return ["  assignments on the chain:", *lines]
    return ["  assignments on the chain: none"] if chain else []
