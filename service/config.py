"""Typed settings, decoded with msgspec from ``litestar.toml`` and overridden by ``TOKENGATE_*`` variables.

Nested keys are addressed with a double underscore: ``TOKENGATE_DATABASE__URL`` overrides ``[database] url``.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

ENV_PREFIX = "TOKENGATE_"
CONFIG_FILE_ENV = "TOKENGATE_CONFIG"
DEFAULT_CONFIG_FILE = "litestar.toml"
DEFAULT_POLICY_DIR = Path(__file__).resolve().parent.parent / "policies"


class ConfigError(Exception):
    """The configuration is invalid; the message names the offending key."""


class DatabaseSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Where the data lives."""

    url: str = "sqlite+aiosqlite:///tokengate.db"
    """SQLAlchemy URL; ``postgresql+asyncpg://…`` selects PostgreSQL."""
    echo: bool = False
    """Log every SQL statement (development only)."""
    pool_size: int = 10
    """Connections per worker (PostgreSQL)."""


class SecuritySettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Server secret and network trust."""

    secret: str = ""
    """Server secret for token hashing and legacy-key encryption; prefer ``TOKENGATE_SECURITY__SECRET``."""
    secret_file: str = ".tokengate-secret"
    """Used when ``secret`` is empty: read, or created with 64 random bytes (mode 0600) on first start."""
    previous_secrets: list[str] = msgspec.field(default_factory=list)
    """Earlier server secrets, still accepted while a rotation lasts: tokens made under them keep working and
    are moved to the current secret when next used (``TOKENGATE_SECURITY__PREVIOUS_SECRETS='["old"]'``)."""
    trusted_proxies: list[str] = msgspec.field(default_factory=list)
    """Networks of the reverse proxies whose ``X-Forwarded-For`` is believed (none by default): the client is then the
    right-most entry that is not one of them (``service/security/client_ip.py``)."""


class TokenSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Limits of legacy tokens and Personal Access Tokens."""

    pat_enabled: bool = True
    """Global switch for Personal Access Tokens."""
    pat_default_allowed: bool = True
    """Default of ``can_use_personal_access_tokens`` for new users."""
    pat_max_per_user: int = 20
    """Active PATs a user may hold at once."""
    pat_max_lifetime_days: int = 365
    """Furthest expiry a PAT may be given."""
    pat_max_acl_entries: int = 32
    """Networks in one PAT's allow-list."""
    rotation_grace_seconds: int = 0
    """How long a rotated-out PAT keeps working."""
    reuse_detection: bool = True
    """A rotated-out PAT presented after its grace revokes every live token of its rotation family."""
    expiry_notice_days: list[int] = msgspec.field(default_factory=lambda: [7, 1])
    """Days before expiry at which an active PAT's owner gets a ``pat_expiring`` event (once per token each)."""
    usage_flush_seconds: float = 5.0
    """How often recorded token usage is written to the database (audit events of use at every flush)."""
    usage_write_seconds: Annotated[float, msgspec.Meta(ge=0)] = 30.0
    """How long a PAT's uses wait in memory before a flush writes them: each token's row about this often at most."""
    verification_cache_size: int = 100_000
    """Verified tokens kept in memory per worker (about 250 bytes each)."""
    refused_token_cache_size: int = 10_000
    """Refused tokens (unknown, revoked) remembered per worker for a few seconds, so floods skip the database."""


class LoginSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Password login throttling."""

    max_failures_per_username: int = 5
    """Failures per username within the window before 429."""
    max_failures_per_ip: int = 20
    """Failures per client address within the window before 429."""
    window_seconds: int = 600
    """Length of the throttling window."""


class ServerSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """How ``tokengate run`` serves (its ``--host``, ``--port`` and ``--workers`` options override these)."""

    host: str = "127.0.0.1"
    """Address to listen on (``0.0.0.0`` or ``::`` for every interface)."""
    port: int = 8000
    """TCP port."""
    workers: int = 1
    """Worker processes; each serves on its own socket. No upper bound: the kernel spreads connections."""
    graceful_seconds: float = 30.0
    """On SIGTERM, how long requests in flight may take before the workers are stopped regardless."""
    database_wait_seconds: float = 30.0
    """How long commands wait for an unreachable database before giving up with a one-line error."""


class LogSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Logging of the service and its access log."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    """``debug``, ``info``, ``warning`` or ``error``."""
    format: Literal["auto", "json", "plain"] = "auto"
    """``json`` (one object a line), ``plain``, or ``auto``: plain on a terminal, JSON otherwise."""
    access: bool = True
    """Write one access-log line per request (at ``info``)."""


class MetricsSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The Prometheus endpoint ``/metrics``."""

    token: str = ""
    """Bearer token a scraper must send; ``/metrics`` answers 404 while it is empty. Prefer the variable."""


class UISettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The web pages under ``/ui/``."""

    idle_timeout_seconds: int = 900
    """A page session unused this long is signed out."""
    session_max_age_seconds: int = 8 * 3600
    """A page session ends this long after sign-in, however active."""


class LeakSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The public leaked-credential revocation endpoint."""

    max_credentials_per_request: int = 100
    """Strings one report may carry."""
    requests_per_minute: int = 10
    """Reports accepted per client address and minute (per worker) before 429."""


class WebhookSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Delivery of audit events as signed JSON to an HTTP endpoint, from an outbox table."""

    url: str = ""
    """Where to POST events; empty: no webhook."""
    secret: str = ""
    """HMAC-SHA256 key of the ``X-Tokengate-Signature`` header; required with ``url``."""
    event_types: list[str] = msgspec.field(
        default_factory=lambda: ["pat_expiring", "pat_expired", "pat_reuse_detected", "token_reported_leaked"]
    )
    """Which events are delivered."""
    poll_seconds: float = 1.0
    """How often each worker looks for deliveries that are due."""
    timeout_seconds: float = 10.0
    """How long one delivery attempt may take."""
    retry_base_seconds: float = 5.0
    """Wait after the first failed attempt; it doubles with each further failure."""
    retry_max_seconds: float = 3600.0
    """Longest wait between two attempts."""
    max_attempts: int = 15
    """Attempts before a delivery is given up (it stays in the outbox, marked by its error)."""

    def __post_init__(self) -> None:
        if self.url and not self.secret:
            raise ValueError("webhook.secret is required when webhook.url is set")


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """All of tokengate's settings."""

    database: DatabaseSettings = msgspec.field(default_factory=DatabaseSettings)
    security: SecuritySettings = msgspec.field(default_factory=SecuritySettings)
    tokens: TokenSettings = msgspec.field(default_factory=TokenSettings)
    login: LoginSettings = msgspec.field(default_factory=LoginSettings)
    server: ServerSettings = msgspec.field(default_factory=ServerSettings)
    log: LogSettings = msgspec.field(default_factory=LogSettings)
    metrics: MetricsSettings = msgspec.field(default_factory=MetricsSettings)
    ui: UISettings = msgspec.field(default_factory=UISettings)
    leaks: LeakSettings = msgspec.field(default_factory=LeakSettings)
    webhook: WebhookSettings = msgspec.field(default_factory=WebhookSettings)
    policy_dir: str = str(DEFAULT_POLICY_DIR)
    """Directory holding the Casbin model and rule files (default: the ``policies/`` shipped with the service)."""
    decision_memo_size: Annotated[int, msgspec.Meta(ge=0)] = 65_536
    """Policy decisions memoised per worker (about 310 bytes each, the oldest go first); 0 memoises none."""
    sync_interval_seconds: float = 0.5
    """How often each worker picks up role and entity changes made by other workers."""
    auto_migrate: bool = True
    """Apply database migrations when ``tokengate run`` starts."""
    debug: bool = False
    """Litestar debug mode (tracebacks in responses): never in production."""


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name == CONFIG_FILE_ENV:
            continue
        path = name[len(ENV_PREFIX) :].lower().split("__")
        node = overrides
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = _parse_env_value(value)
    return overrides


def _parse_env_value(value: str) -> Any:
    """Read TOML arrays, tables and quoted strings (``["10.0.0.0/8"]``); leave every other value a string.

    Scalars stay strings because only the target field knows their type: the lax conversion in
    :func:`load_settings` turns ``"20"`` into ``20`` for an integer setting and ``"true"`` into ``True`` for a
    boolean one, while a secret that happens to look like a number (``12345678``) stays the string it is.
    """
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        return value
    return parsed if isinstance(parsed, str | list | dict) else value


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_settings(path: str | Path | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Read the TOML file (if present), apply environment overrides and validate.

    Args:
        path: the configuration file; defaults to ``$TOKENGATE_CONFIG`` or ``./litestar.toml``.
        environ: the environment to read overrides from; defaults to ``os.environ``.

    Raises:
        ConfigError: the file is not valid TOML, or a key is unknown or has a value of the wrong type.
    """
    environ = dict(os.environ if environ is None else environ)
    config_path = Path(path or environ.get(CONFIG_FILE_ENV, DEFAULT_CONFIG_FILE))
    raw: dict[str, Any] = {}
    if config_path.is_file():
        try:
            raw = tomllib.loads(config_path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{config_path}: {exc}") from exc
    from_file = raw.get("tokengate", raw)
    try:
        msgspec.convert(from_file, Settings)  # the file's values must have their setting's type ("20" is no integer)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"invalid configuration in {config_path}: {exc}") from exc
    try:  # variables are text: each is converted to its setting's type
        return msgspec.convert(_merge(from_file, _env_overrides(environ)), Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"invalid configuration ({config_path}, {ENV_PREFIX}* variables): {exc}") from exc
