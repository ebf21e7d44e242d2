"""Readable traces of a question: the subject, the ancestor chain, every assignment on it, what decided.

A question is a decision (``allow``, matcher m), whether a user may put a permission in a token bound to an entity
or in an unbound one (``delegate``, m2, what ``available_scopes`` lists), or whether a user's token may bind a
permission to an entity's type (``bind``, m3 and m4, what ``available_binding_targets`` lists).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from service.policy.engine import PolicyEngine
from service.policy.facts import Binding, Decision, Subject
from service.policy.store import is_live

Label = Callable[[str], str]
QUESTIONS = ("allow", "delegate", "bind")


def ask(
    engine: PolicyEngine, question: str, subject: Subject, permission: str, entity: str | None, now: datetime
) -> Decision:
    """Answer ``question`` (one of :data:`QUESTIONS`) through the engine's public interface.

    For ``delegate`` and ``bind`` the subject's token, if any, is not looked at, and the clause names the matcher
    that answered (``m2``; for ``bind`` ``m3`` when no token may bind the permission to the type, else ``m4``).
    ``bind`` needs an entity: it asks about the entity's type.
    """
    if question == "allow":
        return engine.decide(subject, permission, entity, now)
    user, staff = subject.user_id, subject.is_staff
    if question == "delegate":
        allowed = engine.may_delegate(user, staff, permission, entity or "", now)
        into = f"a token bound to {entity}" if entity else "an unbound token"
        verb = "may" if allowed else "may not"
        return Decision(allowed, f"user {user} {verb} put {permission} in {into}", "m2")
    fact = engine.entity(entity or "")
    entity_type = fact.type if fact else ""
    if not engine.may_bind(permission, entity_type):
        return Decision(False, f"no token may bind {permission} to {entity_type or 'unknown'} entities", "m3")
    allowed = entity_type in engine.binding_targets(user, staff, now).get(permission, [])
    verb = "may" if allowed else "may not"
    return Decision(allowed, f"a token of user {user} {verb} bind {permission} to {entity_type} entities", "m4")


def explain(
    engine: PolicyEngine,
    subject: Subject,
    permission: str,
    entity: str | None,
    now: datetime,
    *,
    question: str = "allow",
    entity_label: Label = str,
    subject_label: str | None = None,
) -> tuple[Decision, list[str]]:
    """Answer a question, and describe how the answer was reached.

    Args:
        engine: The engine holding the rules and facts.
        subject: Who asks.
        permission: Permission asked for.
        entity: Uuid of the target entity (for ``delegate``: the entity the token is bound to), or None.
        now: Time of the question.
        question: One of :data:`QUESTIONS` (see :func:`ask`).
        entity_label: Turns an entity uuid into a readable name.
        subject_label: How to name the subject (default: ``user <id>``).

    Returns:
        The decision and the lines of its trace.
    """
    decision = ask(engine, question, subject, permission, entity, now)
    name = subject_label or f"user {subject.user_id}"

    def describe(uuid: str) -> str:
        fact = engine.entity(uuid)
        return f"{entity_label(uuid)} ({fact.type})" if fact else f"{entity_label(uuid)} (unknown)"

    target = describe(entity) if entity is not None else "(no entity)"
    asked = {"allow": "on", "delegate": "delegate to a token bound to", "bind": "bind to the type of"}[question]
    if question == "delegate" and entity is None:
        asked, target = "delegate to an unbound token", ""
    lines = [
        f"{'ALLOW' if decision.allowed else 'DENY'}  {name}  {permission}  {asked} {target}".rstrip(),
        f"  subject:   user {subject.user_id}{' (staff)' if subject.is_staff else ''}",
    ]
    if question != "allow":
        # m2 looks at the roles held on the bound entity or above it; unbound, and m4, at every role held
        held_on = engine.ancestors(entity) if question == "delegate" and entity else sorted(engine.entity_uuids())
        lines += _matcher_lines(engine, question)
        lines += _assignment_lines(engine, subject.user_id, permission, held_on, now, decision, describe, "held")
        return decision, [*lines, f"  clause:    {decision.clause}", f"  reason:    {decision.reason}"]
    if subject.token is not None:
        token = subject.token
        bound = ", ".join(sorted(_binding_label(b, entity_label) for b in token.bindings)) or "nothing (unrestricted)"
        lines.append(f"  token:     scopes {', '.join(sorted(token.scopes)) or '(none)'}; bound to {bound}")
    chain = engine.ancestors(entity) if entity is not None else []
    if chain:
        lines.append(f"  ancestors: {' <- '.join(describe(node) for node in chain)}")
    lines.extend(_assignment_lines(engine, subject.user_id, permission, chain, now, decision, describe, "on the chain"))
    if not decision.allowed and decision.rule:
        lines.append(f"  failed:    {decision.rule}")
    lines.append(f"  clause:    {decision.clause}")
    lines.append(f"  reason:    {decision.reason}")
    return decision, lines


def _matcher_lines(engine: PolicyEngine, question: str) -> list[str]:
    """The matchers that answer a ``delegate`` or ``bind`` question, each physical line with its ``file:line``."""
    model = Path(engine.rules.model_file)
    lines = ["  matchers:"]
    for matcher in ("m2",) if question == "delegate" else ("m3", "m4"):
        for number, text in engine.rules.matchers[matcher]:
            lines.append(f"    {model.parent.name}/{model.name}:{number}  {text.strip()}")
    return lines


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
    where: str,
) -> list[str]:
    """One line per assignment of the user on ``chain`` (entities), live or expired, and whether its role grants it.

    ``where`` names the entities in the heading: ``assignments WHERE:``.
    """
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
        return [f"  assignments {where}:", *lines]
    return [f"  assignments {where}: none"] if chain else []
