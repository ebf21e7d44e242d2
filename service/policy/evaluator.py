"""Casbin asks ``policies/model.conf`` every question: check (m), delegate (m2), bind (m3) and target (m4).

The enforcer holds the static rules as Casbin policy: the grant links (``g``), the permission classes (``g3``,
derived from the ``p3`` fields) and the declarations (``p2`` .. ``p5``). The facts reach it as the model
states: the role assignments as ``p`` lines, the entity tree and the entities' types through the role
managers of ``g2`` and ``g4``, which read the engine's :class:`~service.policy.store.FactStore`.

Three measured departures from a stock ``casbin.Enforcer``, each for a reason:

- pycasbin scans every ``p`` line for every question (~16 µs a line). The model's ``p`` is *the asking user's*
  assignments, so each question is shown only the asker's lines (``p.user == r.sub.user_id`` could never hold
  for another user's); lines on the target's ancestor chain come first, nearest first, so the line Casbin
  names for an allow is the nearest granting assignment.
- pycasbin re-parses the matcher on every call (~25 µs); :class:`CompiledMatcher` compiles it once to a Python
  function, after checking it uses nothing pycasbin's own evaluator would refuse.
- pycasbin's ``enforce_ex`` spends about four times the matcher's own cost on every call around it: it scans the
  matcher text for ``eval(`` with a regular expression, rebuilds the function table and a parameter dict per
  line, and folds effects through sets (about 40 µs of a 50 µs cold check, measured at 111,000 entities). For
  the one effect the model states, ``some(where (p.eft == allow))``, :class:`_Enforcer` runs the same loop
  itself: the request's values and each ``p`` line bound to their tokens, the compiled matcher, the first line
  that holds allows and is the one named. Any other effect, or a matcher in which pycasbin finds ``eval(``,
  takes pycasbin's own ``enforce_ex``; every load
  compares both answers on sample questions of every kind (:func:`verify`).
- Casbin's default role manager stops at 10 levels (deeper trees silently deny) and remembers every name it
  is asked about (unknown uuids would grow memory without bound). ``g2`` and ``g4`` answer from the fact
  store, which has neither limit; ``g`` and ``g3`` use :class:`StaticRoles`, which does not remember names.
"""

from __future__ import annotations

import ast
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from threading import Lock
from typing import Any

import casbin
from casbin.core_enforcer import EnforceContext
from casbin.model import Model
from casbin.rbac.default_role_manager import RoleManager
from casbin.util import escape_assertion

from service.policy.catalog import Rules
from service.policy.errors import PolicyError
from service.policy.facts import AssignmentFact, Binding, EntityFact, Subject, TokenLimits
from service.policy.store import FactStore
from service.policy.views import TargetView, target_view

# pycasbin logs every allow at INFO and every deny at WARNING (and the model at load): on the decision path that is
# a log line per request. Decisions are explained by the engine instead; Casbin's own errors still get through.
logging.getLogger("casbin").setLevel(logging.ERROR)

CHECK = EnforceContext(rtype="r", ptype="p", etype="e", mtype="m")
DELEGATE = EnforceContext(rtype="r2", ptype="p", etype="e", mtype="m2")
BIND = EnforceContext(rtype="r3", ptype="p4", etype="e", mtype="m3")
TARGET = EnforceContext(rtype="r4", ptype="p", etype="e", mtype="m4")
NO_ENTITY = ""  # r.obj of a global check, r2.obj of an unbound token
CHECK_ARITY, CHECK_OBJ, CHECK_TOKEN = 5, 2, 3  # Evaluator.check passes r as (sub, perm, obj, token, now)
ROLE_DEPTH = 32  # g: role -> role -> permission chains; g3: permission -> class -> class
# Permission classes (g3): each p3 field names a class; the classes fall into two wider ones.
CLASS_PARENTS = {"entity": "permission", "global": "permission", "token": "delegable", "staff": "delegable"}

Line = list[Any]  # a p line: user id, role, entity uuid, expiry (epoch seconds, inf for never), assignment uuid
LINE_ENTITY = 2  # where a p line holds the entity its role is held on (see _lines)


class EvaluationError(Exception):
    """The model could not answer a question (a matcher that fails on this request); the caller denies."""


class StaticRoles(RoleManager):  # type: ignore[misc]  # pycasbin ships no type hints
    """Casbin's role manager for links loaded once from the policy files, answering from their closure.

    The stock ``has_link`` walks the links breadth-first on every call and creates a role for every name it is
    asked about (a permission name sent by a client would stay in memory forever). These links never change
    after loading, so their transitive closure is computed once, on the first question; an unknown name is
    linked to nothing but itself.
    """

    def __init__(self, max_hierarchy_level: int = ROLE_DEPTH) -> None:
        super().__init__(max_hierarchy_level)
        self._closure: frozenset[tuple[str, str]] | None = None

    def add_link(self, name1: str, name2: str, *domain: str) -> None:
        """Add a link (while the policy loads)."""
        super().add_link(name1, name2, *domain)
        self._closure = None

    def has_link(self, name1: str, name2: str, *domain: str) -> bool:
        """Whether ``name1`` reaches ``name2``; False for a name no link mentions (and nothing is remembered)."""
        if name1 == name2:
            return True
        closure = self._closure
        if closure is None:
            closure = self._closure = frozenset(
                (name, reached) for name in self.all_roles for reached in self._reached(name)
            )
        return (name1, name2) in closure

    def _reached(self, name: str) -> set[str]:
        return {other for other in self.all_roles if other != name and RoleManager.has_link(self, name, other)}


class EntityTree(RoleManager):  # type: ignore[misc]
    """``g2``: an entity is linked to itself and to every entity above it, read from the fact store."""

    def __init__(self, facts: FactStore) -> None:
        super().__init__(0)
        self._facts = facts

    def has_link(self, name1: str, name2: str, *domain: str) -> bool:
        """Whether entity ``name2`` is ``name1`` or above it."""
        return name1 == name2 or name2 in self._facts.chain(name1)


class EntityTypes(RoleManager):  # type: ignore[misc]
    """``g4``: an entity is linked to its type, read from the fact store."""

    def __init__(self, facts: FactStore) -> None:
        super().__init__(0)
        self._facts = facts

    def has_link(self, name1: str, name2: str, *domain: str) -> bool:
        """Whether entity ``name1`` is of type ``name2``."""
        entity = self._facts.entities.get(name1)
        return name1 == name2 or (entity is not None and entity.type == name2)


# What pycasbin's evaluator (simpleeval's EvalWithCompoundTypes) accepts in a matcher, and nothing more.
_ALLOWED_NODES = (
    ast.Expression,
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.BinOp,
    ast.UnaryOp,
    ast.Not,
    ast.USub,
    ast.UAdd,
    ast.Compare,
    ast.Eq,
    ast.NotEq,
    ast.Lt,
    ast.LtE,
    ast.Gt,
    ast.GtE,
    ast.In,
    ast.NotIn,
    ast.Is,
    ast.IsNot,
    ast.Add,
    ast.Sub,
    ast.Mult,
    ast.Div,
    ast.Mod,
    ast.IfExp,
    ast.Call,
    ast.Name,
    ast.Load,
    ast.Store,
    ast.Constant,
    ast.Attribute,
    ast.Subscript,
    ast.List,
    ast.Tuple,
    ast.Set,
    ast.ListComp,
    ast.comprehension,
)


class CompiledMatcher:
    """A matcher expression compiled once to a Python function, evaluated like pycasbin's ``SimpleEval``.

    Raises ``ValueError`` at construction for anything pycasbin's evaluator would not run: statements, lambdas,
    private attributes (``_``), calls of anything but the model's functions.
    """

    def __init__(self, expr: str, functions: Mapping[str, Callable[..., Any]]) -> None:
        self.expr = expr.strip()
        tree = ast.parse(self.expr, mode="eval")
        bound: set[str] = set()
        for node in ast.walk(tree):
            if not isinstance(node, _ALLOWED_NODES):
                raise ValueError(f"{type(node).__name__} is not allowed in a matcher")
            if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
                raise ValueError(f"private attribute {node.attr} is not allowed in a matcher")
            if isinstance(node, ast.Call) and not (isinstance(node.func, ast.Name) and node.func.id in functions):
                raise ValueError(f"unknown function {ast.unparse(node.func)}")
            if isinstance(node, ast.comprehension):
                bound.update(n.id for n in ast.walk(node.target) if isinstance(n, ast.Name))
        names = sorted(
            {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
            - set(functions)
            - bound
        )
        # the names become locals of a function, so comprehensions see them (eval() locals they would not)
        source = "def matcher(names):\n"
        source += "".join(f"    {name} = names[{name!r}]\n" for name in names)
        source += f"    return ({self.expr})\n"
        scope: dict[str, Any] = {"__builtins__": {}, **functions}
        exec(compile(source, "<model.conf matcher>", "exec"), scope)  # noqa: S102  # checked above: an expression
        self._function: Callable[[Mapping[str, Any]], Any] = scope["matcher"]

    def eval(self, names: Mapping[str, Any]) -> Any:
        """Evaluate with the request and policy values; a name the request lacks raises ``KeyError``."""
        return self._function(names)


ALLOW_SOME = "some(where (p_eft == allow))"  # pycasbin's spelling of the model's effect once it is loaded


@dataclass(frozen=True, slots=True)
class _Question:
    """What ``enforce_ex`` needs of one request/matcher pair, looked up once."""

    request_tokens: tuple[str, ...]
    policy: Any  # the p assertion whose lines are asked (pycasbin's Assertion)
    policy_tokens: tuple[str, ...]
    matcher: CompiledMatcher


class _Enforcer(casbin.Enforcer):  # type: ignore[misc]
    """A Casbin enforcer whose matchers are compiled once (see :class:`CompiledMatcher`), or pycasbin's own."""

    def __init__(self, model: Model, compiled: bool = True) -> None:
        self._compiled: dict[str, CompiledMatcher] = {}
        self._compile = compiled
        self._questions: dict[str, _Question | None] = {}
        super().__init__(model)

    def enforce_ex(self, *rvals: Any) -> tuple[bool, list[Any]]:
        """Answer as ``casbin.Enforcer.enforce_ex(context, *request)``: the same loop, without its per-call overhead."""
        if not self.enabled:
            return True, []
        context, *request = rvals
        question = self._question(context) if self._compile and isinstance(context, EnforceContext) else None
        if question is None:
            allowed, line = super().enforce_ex(*rvals)
            return bool(allowed), list(line)
        if len(request) != len(question.request_tokens):
            raise RuntimeError("invalid request size")
        names = dict(zip(question.request_tokens, request, strict=True))
        lines = question.policy.policy
        if not lines:
            names.update(dict.fromkeys(question.policy_tokens, ""))
            return bool(question.matcher.eval(names)), []
        for line in lines:
            if len(line) != len(question.policy_tokens):
                raise RuntimeError("invalid policy size")
            names.update(zip(question.policy_tokens, line, strict=True))
            result = question.matcher.eval(names)
            if not isinstance(result, bool | float):
                raise RuntimeError("matcher result should be bool, int or float")
            if result:
                return True, line
        return False, []

    def _question(self, context: EnforceContext) -> _Question | None:
        """The looked-up request/matcher pair of ``context``, or None to leave it to pycasbin's own loop.

        None for another effect, and for a matcher in which pycasbin finds ``eval(`` (it substitutes each policy
        line into such a matcher).
        """
        key = context.mtype
        if key not in self._questions:
            model = self.model
            allow_some = (
                model["e"][context.etype].value == ALLOW_SOME
                and "p_eft" not in model["p"][context.ptype].tokens
                and not casbin.util.has_eval(model["m"][key].value)  # pycasbin rewrites such a matcher per line
            )
            self._questions[key] = (
                _Question(
                    tuple(model["r"][context.rtype].tokens),
                    model["p"][context.ptype],
                    tuple(model["p"][context.ptype].tokens),
                    self._get_expression(model["m"][key].value, self.matcher_functions()),
                )
                if allow_some
                else None
            )
        return self._questions[key]

    def lean_matcher(self, context: EnforceContext) -> CompiledMatcher | None:
        """The compiled matcher this enforcer's own loop evaluates for ``context``; None where pycasbin's loop runs."""
        question = self._question(context) if self._compile else None
        return question.matcher if question is not None else None

    def matcher_functions(self) -> dict[str, Callable[..., Any]]:
        """The functions a matcher may call, as pycasbin's ``enforce_ex`` gathers them.

        A role definition without domains (``_, _``) calls its role manager's ``has_link`` directly: pycasbin's
        wrapper only unpacks the two arguments again, at a call per clause that asks ``g``.
        """
        functions: dict[str, Callable[..., Any]] = self.fm.get_functions()
        for gtype, assertion in self.model["g"].items():
            two_names = assertion.rm is not None and assertion.value.replace(" ", "") == "_,_"
            functions[gtype] = assertion.rm.has_link if two_names else casbin.util.generate_g_function(assertion.rm)
        return functions

    def _get_expression(self, expr: str, functions: Any = None) -> Any:
        if not self._compile:
            return super()._get_expression(expr, functions)
        compiled = self._compiled.get(expr)
        if compiled is None:
            stock = super()._get_expression(expr, functions)  # pycasbin's rewriting of &&, ||, !
            compiled = self._compiled[expr] = CompiledMatcher(stock.expr, functions or {})
        return compiled


@dataclass(frozen=True, slots=True)
class Conjunct:
    """One clause of a matcher: its text, its line in ``model.conf``, and the compiled expression."""

    text: str
    line: int
    matcher: CompiledMatcher


def split_conjuncts(lines: Sequence[tuple[int, str]]) -> list[tuple[int, str]]:
    """Split a matcher at its top-level ``&&`` into ``(line, text)`` clauses (one, if it has a top-level ``||``)."""
    clauses: list[tuple[int, str]] = []
    depth, quote, current, start = 0, "", "", 0
    for number, text in lines:
        i = 0
        while i < len(text):
            char = text[i]
            if quote:
                quote = "" if char == quote else quote
            elif char in "\"'":
                quote = char
            elif char in "([{":
                depth += 1
            elif char in ")]}":
                depth -= 1
            elif depth == 0 and text.startswith("||", i):
                return [(lines[0][0], " ".join(t for _, t in lines).split("=", 1)[1].strip())]
            elif depth == 0 and text.startswith("&&", i):
                clauses.append((start, current.strip()))
                current, start, i = "", 0, i + 2
                continue
            if not current.strip() and not char.isspace():
                start = number
            current += char
            i += 1
        current += " "
    clauses.append((start, current.strip()))
    first_line, first = clauses[0]
    clauses[0] = (first_line, first.split("=", 1)[1].strip())
    return clauses


class Evaluator:
    """One load of the rules as a Casbin enforcer, answering from the facts in ``facts``.

    Calls are serialised: the enforcer's ``p`` lines are set to the asker's before each question.
    """

    def __init__(self, rules: Rules, facts: FactStore, *, compiled: bool = True) -> None:
        """Build the enforcer.

        Raises:
            PolicyError: A clause of m does not compile; located at its line.
        """
        model = Model()
        model.load_model_from_text(rules.model_text)
        for ptype, rows in rules.declarations.items():
            for values in rows:
                model.add_policy("g" if ptype.startswith("g") else "p", ptype, list(values))
        for spec in rules.permissions.values():
            model.add_policy("g", "g3", [spec.name, "global" if spec.global_only else "entity"])
            model.add_policy("g", "g3", [spec.name, spec.delegation])
        for child, parent in CLASS_PARENTS.items():
            model.add_policy("g", "g3", [child, parent])
        self._enforcer = _Enforcer(model, compiled)
        managers: dict[str, RoleManager] = {
            "g": StaticRoles(ROLE_DEPTH),
            "g2": EntityTree(facts),
            "g3": StaticRoles(ROLE_DEPTH),
            "g4": EntityTypes(facts),
        }
        for gtype, manager in managers.items():
            self._enforcer.rm_map[gtype] = manager
            model["g"][gtype].rm = manager
        model["g"]["g"].build_role_links(managers["g"])
        model["g"]["g3"].build_role_links(managers["g3"])
        self._enforcer.add_function("entity_exists", facts.exists)
        self._assignments = model["p"]["p"]
        self._facts = facts
        self._lock = Lock()
        self.rules = rules
        self.conjuncts = []
        for line, text in split_conjuncts(rules.matchers["m"]):
            try:
                matcher = CompiledMatcher(_rewrite(escape_assertion(text)), self._enforcer.matcher_functions())
            except (SyntaxError, ValueError) as exc:
                raise PolicyError(rules.model_file, line, f"matcher m: {_message(exc)}") from exc
            self.conjuncts.append(Conjunct(text, line, matcher))
        self.target_view = self._target_view()

    def _target_view(self) -> TargetView | None:
        """What m sees of the target (``service.policy.views``), when Casbin's answer is this enforcer's loop."""
        matcher = self._enforcer.lean_matcher(CHECK)
        request = self._enforcer.model["r"][CHECK.rtype].tokens
        if matcher is None or len(request) != CHECK_ARITY:
            return None
        return target_view(matcher.expr, request[CHECK_OBJ], request[CHECK_TOKEN], self._assignments.tokens)

    # -- questions -------------------------------------------------------------------------------------

    def _lines(self, user_id: int, entity: str = NO_ENTITY) -> list[Line]:
        """The user's assignments as p lines; with an entity, those on its ancestor chain first, nearest first."""
        held = self._facts.of_user(user_id)
        lines: list[Line] = [
            [a.user_id, a.role, a.entity, a.expires_at.timestamp() if a.expires_at else math.inf, a.uuid] for a in held
        ]
        if len(lines) > 1 and entity:
            position = {uuid: index for index, uuid in enumerate(self._facts.chain(entity))}
            lines.sort(key=lambda line: position.get(line[LINE_ENTITY], len(position)))
        return lines

    def _ask(self, context: EnforceContext, lines: list[Line], *request: Any) -> tuple[bool, Line]:
        with self._lock:
            self._assignments.policy = lines
            try:
                allowed, rule = self._enforcer.enforce_ex(context, *request)
            except Exception as exc:  # a matcher failing on this request: fail closed, say where
                raise EvaluationError(f"{self.rules.model_file}: {context.mtype} failed: {exc!r}") from exc
            finally:
                self._assignments.policy = []
        return bool(allowed), list(rule)

    def check(self, subject: Subject, permission: str, entity: str, now: float) -> tuple[bool, Line]:
        """m: may ``subject`` use ``permission`` on ``entity`` ("" for none)? Returns the answer and the p line."""
        lines = self._lines(subject.user_id, entity)
        return self._ask(CHECK, lines, subject, permission, entity, subject.token, now)

    def reachable(self, subject: Subject) -> set[object] | None:
        """The entities m can test a target of ``subject``'s against (``TargetView.reachable``); None: no view.

        They depend on the subject's assignments and token alone. Two mirrored targets on whose ancestor chains the
        same of them lie (``TargetView.shape``) get the same answer from m for the same subject, permission and
        time, allowed by the same ``p`` line.
        """
        view = self.target_view
        if view is None:
            return None
        lines = self._lines(subject.user_id)
        # the loop binds every p field to "" when there is no line (_Enforcer.enforce_ex)
        reached = view.reachable(lines or [[""] * len(self._assignments.tokens)], subject.token)
        if reached is not None:  # check orders the lines by where p.entity lies on the target's chain (_lines):
            reached.update(line[LINE_ENTITY] for line in lines)  # the line named for an allow depends on it
        return reached

    def delegate(self, subject: Subject, permission: str, entity: str, now: float) -> bool:
        """m2: may the user put ``permission`` in a token bound to ``entity`` ("" for an unbound token)?"""
        return self._ask(DELEGATE, self._lines(subject.user_id), subject, permission, entity, now)[0]

    def bind(self, permission: str, entity_type: str) -> bool:
        """m3: may a token carrying ``permission`` be bound to entities of ``entity_type``?"""
        with self._lock:
            return bool(self._enforcer.enforce(BIND, permission, entity_type))

    def target(self, subject: Subject, permission: str, entity_type: str, now: float) -> bool:
        """m4: may the user bind ``permission`` to entities of ``entity_type`` (a role held on one grants it)?"""
        return self._ask(TARGET, self._lines(subject.user_id), subject, permission, entity_type, now)[0]

    def failing_clause(self, subject: Subject, permission: str, entity: str, now: float) -> Conjunct | None:
        """The first clause of m that no ``p`` line of the asker passes together with the clauses before it."""
        request = {"r_sub": subject, "r_perm": permission, "r_obj": entity, "r_token": subject.token, "r_now": now}
        lines = self._lines(subject.user_id) or [[""] * len(self._assignments.tokens)]
        candidates = [{**request, **dict(zip(self._assignments.tokens, line, strict=True))} for line in lines]
        with self._lock:
            for conjunct in self.conjuncts:
                candidates = [names for names in candidates if _holds(conjunct.matcher, names)]
                if not candidates:
                    return conjunct
        return None


def _holds(matcher: CompiledMatcher, names: Mapping[str, Any]) -> bool:
    try:
        return bool(matcher.eval(names))
    except Exception:  # a clause that cannot be evaluated does not hold
        return False


def _rewrite(expr: str) -> str:
    """Pycasbin's rewriting of a matcher into its evaluator's syntax (``&&`` -> ``and`` ...)."""
    return str(casbin.Enforcer._get_expression(expr).expr)


def _message(exc: BaseException) -> str:
    return exc.msg if isinstance(exc, SyntaxError) and exc.msg else str(exc) or type(exc).__name__


def sample_subtree(entity_types: Mapping[str, tuple[str, ...]], top: str, prefix: str) -> list[EntityFact]:
    """An entity of type ``top`` and, below it, one entity of every type reachable down the parent types.

    A type that nests under itself gets one entity of its own type below the top one.
    """
    root = EntityFact(f"{prefix}{top}", top, None)
    tree, queue, seen = [root], [root], {top}
    while queue:
        parent = queue.pop(0)
        for child, parents in entity_types.items():
            if parent.type in parents and (child not in seen or (child == parent.type and parent is root)):
                seen.add(child)
                entity = EntityFact(f"{parent.uuid}/{child}", child, parent.uuid)
                tree.append(entity)
                if child != parent.type:
                    queue.append(entity)
    return tree


def verify(rules: Rules) -> None:
    """Ask every matcher sample questions of its kind, compiled and with pycasbin's own evaluator.

    Anything that would fail at decision time (an unknown function or name, a type error, a result that is not
    true or false) fails here instead, and so does a compiled matcher that answers differently from pycasbin's.

    A policy that passed is remembered for the life of the process (by its model text and policy lines), so
    loading the same files again costs nothing more.

    Raises:
        PolicyError: At the first line of the matcher that failed.
    """
    key = (rules.model_file, rules.model_text, tuple((t, tuple(rows)) for t, rows in rules.declarations.items()))
    if key in _VERIFIED:
        return
    _verify(rules)
    _VERIFIED.add(key)


_VERIFIED: set[object] = set()


def _verify(rules: Rules) -> None:
    facts = FactStore()
    entities = [e for top in rules.entity_types for e in sample_subtree(rules.entity_types, top, f"{top}#")]
    assignments = [
        AssignmentFact(f"a{i}", 1, role.name, f"{role.scope_type}#{role.scope_type}", None)
        for i, role in enumerate(rules.roles.values())
    ]
    facts.replace(entities, assignments)
    evaluators = (Evaluator(rules, facts), Evaluator(rules, facts, compiled=False))
    permissions = [*_samples(rules), "UNKNOWN.PERMISSION"]
    scopes = frozenset(permissions)
    tokens = [
        None,
        TokenLimits(scopes, frozenset()),
        TokenLimits(scopes, frozenset({Binding(entities[0].type, entities[0].uuid), Binding("x", "gone", True)})),
    ]
    subjects = [Subject(1, False), Subject(2, False), Subject(3, True)]
    targets = [NO_ENTITY, entities[0].uuid, entities[-1].uuid, "unknown-entity"]
    questions: list[tuple[str, str, tuple[object, ...]]] = []  # matcher, Evaluator method, arguments
    for subject in subjects:
        for permission in permissions:
            for target in targets:
                for token in tokens:
                    asker = Subject(subject.user_id, subject.is_staff, token)
                    questions.append(("m", "check", (asker, permission, target, 0.0)))
                questions.append(("m2", "delegate", (subject, permission, target, 0.0)))
            for entity_type in rules.entity_types:
                questions.append(("m4", "target", (subject, permission, entity_type, 0.0)))
    for permission in permissions:
        for entity_type in rules.entity_types:
            questions.append(("m3", "bind", (permission, entity_type)))
    for matcher, method, arguments in questions:
        line = rules.matchers[matcher][0][0]
        try:
            compiled, stock = (getattr(evaluator, method)(*arguments) for evaluator in evaluators)
        except Exception as exc:  # whatever the matcher raises is the author's to see
            message = _message(exc.__cause__ or exc)
            raise PolicyError(rules.model_file, line, f"matcher {matcher} fails: {message}") from exc
        if compiled != stock:
            raise PolicyError(rules.model_file, line, f"matcher {matcher}: compiled and pycasbin answers differ")


def _samples(rules: Rules) -> list[str]:
    """One permission of every kind the catalogue has: scope x delegation."""
    kinds: dict[tuple[bool, str], str] = {}
    for spec in rules.permissions.values():
        kinds.setdefault((spec.global_only, spec.delegation), spec.name)
    return list(kinds.values())
