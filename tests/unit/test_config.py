"""Settings: defaults, the TOML file, ``TOKENGATE_SECTION__KEY`` overrides and errors naming the key."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from service.config import DEFAULT_POLICY_DIR, ConfigError, Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_without_file_or_environment(tmp_path: Path) -> None:
    settings = load_settings(path=tmp_path / "absent.toml", environ={})
    assert settings == Settings()
    assert settings.database.url.startswith("sqlite+aiosqlite:///")
    assert settings.tokens.pat_max_per_user == 20
    assert settings.auto_migrate is True
    assert settings.debug is False


def test_the_shipped_litestar_toml_loads() -> None:
    settings = load_settings(path=ROOT / "litestar.toml", environ={})
    assert Path(settings.policy_dir) == ROOT / "policies"
    assert settings.tokens.pat_max_lifetime_days == 365
    assert settings.login.window_seconds == 600


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "litestar.toml"
    path.write_text(text)
    return path


def test_toml_file_values(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[tokengate]
policy_dir = "rules"
[tokengate.database]
url = "postgresql+asyncpg://db/tokengate"
pool_size = 3
[tokengate.tokens]
pat_max_per_user = 7
usage_flush_seconds = 0.5
[tokengate.security]
trusted_proxies = ["10.0.0.0/8"]
""",
    )
    settings = load_settings(path=path, environ={})
    assert settings.policy_dir == "rules"
    assert settings.database.url == "postgresql+asyncpg://db/tokengate"
    assert settings.database.pool_size == 3
    assert settings.tokens.pat_max_per_user == 7
    assert settings.tokens.usage_flush_seconds == 0.5
    assert settings.security.trusted_proxies == ["10.0.0.0/8"]
    assert settings.login.max_failures_per_ip == 20  # untouched sections keep their defaults


def test_tokengate_config_variable_selects_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[tokengate.tokens]\npat_max_per_user = 3\n")
    assert load_settings(environ={"TOKENGATE_CONFIG": str(path)}).tokens.pat_max_per_user == 3


@pytest.mark.parametrize(
    ("variable", "value", "read"),
    [
        (
            "TOKENGATE_DATABASE__URL",
            "postgresql+asyncpg://127.0.0.1/test",
            lambda s: s.database.url == "postgresql+asyncpg://127.0.0.1/test",
        ),
        ("TOKENGATE_TOKENS__PAT_MAX_PER_USER", "5", lambda s: s.tokens.pat_max_per_user == 5),
        ("TOKENGATE_TOKENS__USAGE_FLUSH_SECONDS", "2.5", lambda s: s.tokens.usage_flush_seconds == 2.5),
        ("TOKENGATE_TOKENS__PAT_ENABLED", "false", lambda s: s.tokens.pat_enabled is False),
        ("TOKENGATE_DEBUG", "true", lambda s: s.debug is True),
        ("TOKENGATE_POLICY_DIR", "/etc/tokengate/policies", lambda s: s.policy_dir == "/etc/tokengate/policies"),
        (
            "TOKENGATE_SECURITY__TRUSTED_PROXIES",
            '["10.0.0.0/8", "::1/128"]',
            lambda s: s.security.trusted_proxies == ["10.0.0.0/8", "::1/128"],
        ),
        ("TOKENGATE_SECURITY__SECRET", "12345678", lambda s: s.security.secret == "12345678"),  # stays a string
        ("TOKENGATE_SECURITY__SECRET", "true", lambda s: s.security.secret == "true"),
        ("TOKENGATE_SECURITY__SECRET", '"quoted"', lambda s: s.security.secret == "quoted"),
    ],
)
def test_environment_overrides_the_file(
    tmp_path: Path, variable: str, value: str, read: Callable[[Settings], bool]
) -> None:
    path = write(
        tmp_path,
        """
[tokengate]
policy_dir = "rules"
debug = false
[tokengate.database]
url = "sqlite+aiosqlite:///from-file.db"
[tokengate.tokens]
pat_max_per_user = 7
""",
    )
    settings = load_settings(path=path, environ={variable: value, "UNRELATED": "1"})
    assert read(settings)


def test_override_leaves_sibling_keys_from_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[tokengate.database]\nurl = 'sqlite+aiosqlite:///f.db'\npool_size = 4\n")
    settings = load_settings(path=path, environ={"TOKENGATE_DATABASE__URL": "sqlite+aiosqlite:///env.db"})
    assert settings.database.url == "sqlite+aiosqlite:///env.db"
    assert settings.database.pool_size == 4


@pytest.mark.parametrize(
    ("file_text", "environ", "named"),
    [
        ("[tokengate.database]\nnope = 1\n", {}, ["nope", "$.database"]),
        ("[tokengate]\nsurprise = 1\n", {}, ["surprise"]),
        ("", {"TOKENGATE_TOKENS__NOPE": "1"}, ["nope", "$.tokens"]),
        ("", {"TOKENGATE_NOPE": "1"}, ["nope"]),
        ("", {"TOKENGATE_TOKENS__PAT_MAX_PER_USER": "abc"}, ["$.tokens.pat_max_per_user"]),
        ("[tokengate.tokens]\npat_max_per_user = 'many'\n", {}, ["$.tokens.pat_max_per_user"]),
        ("[tokengate.tokens]\npat_enabled = 'maybe'\n", {}, ["$.tokens.pat_enabled"]),
        ("", {"TOKENGATE_SECURITY__TRUSTED_PROXIES": "10.0.0.0/8"}, ["$.security.trusted_proxies"]),
        ("[tokengate]\ndatabase = 5\n", {}, ["$.database"]),
        ('[tokengate.tokens]\npat_max_per_user = "20"\n', {}, ["litestar.toml", "$.tokens.pat_max_per_user"]),
        ('[tokengate.server]\nworkers = "2"\n', {}, ["$.server.workers"]),
        ('[tokengate.log]\nlevel = "loud"\n', {}, ["$.log.level"]),
        ("", {"TOKENGATE_LOG__FORMAT": "xml"}, ["$.log.format"]),
        ("", {"TOKENGATE_DECISION_MEMO_SIZE": "-1"}, ["$.decision_memo_size"]),
    ],
)
def test_unknown_keys_and_wrong_types_name_the_key(
    tmp_path: Path, file_text: str, environ: dict[str, str], named: list[str]
) -> None:
    path = write(tmp_path, file_text)
    with pytest.raises(ConfigError) as error:
        load_settings(path=path, environ=environ)
    assert all(part in str(error.value) for part in named), str(error.value)


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[tokengate\n")
    with pytest.raises(ConfigError, match=r"litestar\.toml"):
        load_settings(path=path, environ={})


def test_variables_are_converted_to_the_setting_type(tmp_path: Path) -> None:
    settings = load_settings(path=tmp_path / "absent.toml", environ={"TOKENGATE_SERVER__WORKERS": "20"})
    assert settings.server.workers == 20


def test_the_policy_directory_does_not_depend_on_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(path=tmp_path / "absent.toml", environ={})
    assert Path(settings.policy_dir) == DEFAULT_POLICY_DIR == ROOT / "policies"
    assert (DEFAULT_POLICY_DIR / "model.conf").is_file()
