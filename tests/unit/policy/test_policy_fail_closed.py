"""A wrong ``model.conf`` is refused with ``file:line`` by ``policy check`` and by reload; at request time, denied.

Also pins each measured pycasbin pitfall the engine works around.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import casbin
import pytest
from casbin.rbac.default_role_manager import RoleManager

from service.policy import AssignmentFact, EntityFact, PolicyEngine, PolicyError, Subject
from service.policy.evaluator import StaticRoles
from service.policy.reload import reload_policy
from service.policy_tools.lint import check_directory

LAST_CLAUSE = "g2(r.obj, p.entity))\n"


@pytest.fixture(name="copy")
def fx_copy(policy_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "policies"
    shutil.copytree(policy_dir, target, ignore=shutil.ignore_patterns("*.md", "tests"))
    return target


def edit_model(directory: Path, old: str, new: str) -> int:
    """Replace ``old`` by ``new`` in model.conf; return the line where ``new`` starts."""
    model = directory / "model.conf"
    text = model.read_text()
    assert old in text
    model.write_text(text.replace(old, new, 1))
    return text[: text.index(old)].count("\n") + 1


def line_of(directory: Path, prefix: str) -> int:
    lines = (directory / "model.conf").read_text().splitlines()
    return next(n for n, text in enumerate(lines, 1) if text.startswith(prefix))


# Each wrong edit: (old, new, the matcher definition it breaks, what the author is told)
WRONG_EDITS = [
    ('g3(r.perm, "permission")', 'g3(r.perm, "permission") && no_such_function(r.obj)', "m =", "unknown function"),
    ("r.perm in r.token.scopes", "r.perm in r.tokn.scopes", "m =", "matcher m fails"),
    ("r2.now < p.expires", 'r2.now < p.expires + "x"', "m2 =", "matcher m2 fails"),
    ("m3 = r3.perm == p4.perm", "m3 = r3.perm == p4.perm_name", "m3 =", "matcher m3 fails"),
    ("g4(p.entity, r4.type)", "g4(p.entity, r4.kind)", "m4 =", "matcher m4 fails"),
    ('g3(r.perm, "permission")', 'g3(r.perm, "permission") && (lambda: 1)', "m =", "Lambda is not allowed"),
    ('g3(r.perm, "permission")', 'g3(r.perm, "permission") && r.sub._hash', "m =", "private attribute"),
]


@pytest.mark.parametrize(("old", "new", "definition", "message"), WRONG_EDITS, ids=[e[3] for e in WRONG_EDITS])
def test_a_wrong_matcher_is_refused_at_its_line(
    copy: Path, policy_dir: Path, old: str, new: str, definition: str, message: str, caplog: pytest.LogCaptureFixture
) -> None:
    edit_model(copy, old, new)
    line = line_of(copy, definition)
    problems = check_directory(copy)
    assert [(p.file, p.line) for p in problems] == [(str(copy / "model.conf"), line)], problems
    assert message in problems[0].message
    engine = PolicyEngine.from_directory(policy_dir)
    engine.replace_facts(
        [EntityFact("acme", "customer", None)], [AssignmentFact("a", 1, "CUSTOMER.OWNER", "acme", None)]
    )
    with caplog.at_level(logging.ERROR, logger="tokengate.policy"):
        assert reload_policy(engine, copy) is False  # SIGHUP's reload: the old model stays
    assert f"{copy / 'model.conf'}:{line}: " in caplog.text
    assert engine.decide(Subject(1, False), "CUSTOMER.UPDATE", "acme").allowed


@pytest.mark.parametrize(
    ("old", "new", "definition", "message"),
    [
        ("e = some(where (p.eft == allow))", "e = !some(where (p.eft == deny))", "e =", "policy effect must be"),
        ("g2(r.obj, p.entity))\n", "g2(r.obj, p.entity)) # inherited\n", "m =", "'#', which Casbin reads as a comment"),
        ("g4 = _, _", "g4 = _, _, _", "g4 =", "role definition must be: g4 = _, _"),
    ],
)
def test_a_wrong_model_is_refused_at_its_line(copy: Path, old: str, new: str, definition: str, message: str) -> None:
    edit_model(copy, old, new)
    line = line_of(copy, definition) if definition != "m =" else _line_containing(copy, "# inherited")
    problems = check_directory(copy)
    assert [(p.file, p.line) for p in problems] == [(str(copy / "model.conf"), line)], problems
    assert message in problems[0].message
    with pytest.raises(PolicyError):
        PolicyEngine.from_directory(copy)


def _line_containing(directory: Path, text: str) -> int:
    lines = (directory / "model.conf").read_text().splitlines()
    return next(n for n, row in enumerate(lines, 1) if text in row)


def test_an_error_at_request_time_denies_and_logs(copy: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A clause that fails only on an input no sample asks: the question is denied, the failure logged."""
    edit_model(copy, LAST_CLAUSE, 'g2(r.obj, p.entity)) \\\n && (r.obj != "boom" || 1 / 0 == 0)\n')
    assert check_directory(copy) == []
    engine = PolicyEngine.from_directory(copy)
    engine.replace_facts(
        [EntityFact("boom", "customer", None)], [AssignmentFact("a", 1, "CUSTOMER.OWNER", "boom", None)]
    )
    with caplog.at_level(logging.ERROR, logger="tokengate.policy"):
        decision = engine.decide(Subject(1, False), "CUSTOMER.UPDATE", "boom")
    assert decision.allowed is False
    assert "ZeroDivisionError" in caplog.text
    assert "(denied)" in caplog.text


# -- pycasbin 2.8 pitfalls, each pinned -------------------------------------------------------------------------


def test_the_stock_role_manager_stops_at_ten_levels_the_entity_tree_does_not(policy_dir: Path) -> None:
    stock = RoleManager(10)
    for level in range(12):
        stock.add_link(f"e{level + 1}", f"e{level}")
    assert stock.has_link("e9", "e0")
    assert not stock.has_link("e10", "e0")
    engine = PolicyEngine.from_directory(policy_dir)
    chain = [EntityFact("e0", "customer", None), *(EntityFact(f"e{i}", "project", f"e{i - 1}") for i in range(1, 40))]
    engine.replace_facts(chain, [AssignmentFact("a", 1, "CUSTOMER.OWNER", "e0", None)])
    assert engine.decide(Subject(1, False), "PROJECT.UPDATE", "e39").allowed


def test_role_managers_remember_no_name_they_are_asked_about(policy_dir: Path) -> None:
    stock = RoleManager(10)
    stock.add_link("CUSTOMER.OWNER", "PROJECT.UPDATE")
    for i in range(100):
        stock.has_link(f"unknown-{i}", "PROJECT.UPDATE")
    assert len(stock.all_roles) == 102  # the stock manager keeps every name asked
    ours = StaticRoles(10)
    ours.add_link("CUSTOMER.OWNER", "PROJECT.UPDATE")
    engine = PolicyEngine.from_directory(policy_dir)
    for i in range(100):
        assert not ours.has_link(f"unknown-{i}", "PROJECT.UPDATE")
        engine.decide(Subject(1, False), f"NO.SUCH_{i}", f"no-such-entity-{i}")
    assert len(ours.all_roles) == 2
    managers = engine._evaluator._enforcer.rm_map  # the pitfall lives inside the enforcer
    assert all(len(manager.all_roles) < 200 for manager in managers.values())


def test_fast_enforcer_would_drop_the_other_questions(policy_dir: Path) -> None:
    """``FastEnforcer`` keeps only the first r/p/e/m/g sections: the engine must not use it."""
    engine = PolicyEngine.from_directory(policy_dir)
    enforcer = engine._evaluator._enforcer
    assert not isinstance(enforcer, casbin.FastEnforcer)
    assert {"r2", "r3", "r4"} <= set(enforcer.model["r"])
    assert {"g2", "g3", "g4"} <= set(enforcer.model["g"])


def test_there_is_no_cached_enforcer_to_rely_on() -> None:
    """pycasbin 2.8 has no ``CachedEnforcer``: the engine's own memo is the cache."""
    assert not hasattr(casbin, "CachedEnforcer")


def test_no_domain_matching_function_is_installed(policy_dir: Path) -> None:
    """``add_named_domain_matching_func`` calls its function on every stored domain: the model uses no domains."""
    engine = PolicyEngine.from_directory(policy_dir)
    managers = engine._evaluator._enforcer.rm_map
    assert all(getattr(manager, "domain_matching_func", None) is None for manager in managers.values())
    assert all(len(a.tokens) == 2 for a in engine._evaluator._enforcer.model["g"].values())
