"""The ``tokengate`` command: Litestar's CLI with the app preset, plus the project's own commands.

``run`` is the production server (``service.serving``); ``users`` manages accounts; ``database upgrade`` migrates.
Commands that need the database wait for it (bounded) and migrate it first; failures end in one line.
Framework commands that an operator should not reach for by accident are hidden from the help.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import rich_click as click

# LitestarGroup is private (litestar 2.x, litestar/cli/_utils.py); it is the group class that injects the app into
# each command, as Litestar's own command groups use it, and the CLIPlugin API offers no public one.
from litestar.cli._utils import LitestarGroup
from litestar.plugins import CLIPlugin

if TYPE_CHECKING:
    from litestar import Litestar

    from service.runtime import Runtime
    from service.users.models import User

HIDDEN_COMMANDS = ("sessions",)
HIDDEN_DATABASE_COMMANDS = (
    "drop-all",
    "dump-data",
    "edit",
    "ensure-version",
    "init",
    "list-templates",
    "make-migrations",
    "merge",
    "stamp",
)
PASSWORD_HELP = "Read the password from standard input (one line) instead of a prompt."
PASSWORD_ENV_HELP = "Read the password from the environment variable NAME instead of a prompt."


def say(message: str) -> None:
    """One line for the operator on standard error."""
    click.secho(f"tokengate: {message}", fg="yellow", err=True)


def with_database(app: Litestar) -> Runtime:
    """The app's runtime, once its database answers and is migrated."""
    from service.db import prepare_database

    runtime: Runtime = app.state.runtime
    prepare_database(runtime.settings, say)
    return runtime


async def _count_staff(runtime: Runtime) -> int:
    from sqlalchemy import func, select

    from service.users.models import User

    async with runtime.session() as session:
        return int(await session.scalar(select(func.count()).select_from(User).where(User.is_staff.is_(True))) or 0)


def announce_first_start(runtime: Runtime) -> None:
    """Tell the operator how to make the first staff user when there is none."""
    if runtime.run_once(_count_staff) == 0:
        say("no staff user yet. Create one with:  tokengate users create admin --staff")


def read_password(from_stdin: bool, env_name: str | None, given: str | None = None) -> str:
    """The password from ``--password``, standard input, a named variable, or a prompt (asked twice)."""
    if given is not None:
        return given
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if env_name is not None:
        if env_name not in os.environ:
            raise click.BadParameter(f"the environment variable {env_name} is not set", param_hint="--password-env")
        return os.environ[env_name]
    if not sys.stdin.isatty():
        raise click.UsageError("no terminal to ask for the password: use --password-stdin or --password-env NAME")
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


def _password_options(command: Callable[..., Any]) -> Callable[..., Any]:
    command = click.option("--password-env", metavar="NAME", help=PASSWORD_ENV_HELP)(command)
    return click.option("--password-stdin", is_flag=True, default=False, help=PASSWORD_HELP)(command)


def _update_user(app: Litestar, username: str, changes: dict[str, Any]) -> User:
    import msgspec

    from service.errors import ValidationError
    from service.users.schemas import UserUpdate
    from service.users.services import UserService

    try:
        data = msgspec.convert(changes, UserUpdate)
    except msgspec.ValidationError as exc:
        raise click.BadParameter(str(exc)) from exc

    async def work(runtime: Runtime) -> User:
        async with runtime.session() as session:
            users = UserService(session=session, runtime=runtime)
            user = await users.get_one_or_none(username=username)
            if user is None:
                raise click.ClickException(f"no user named {username!r}")
            return await users.update_user(user, data)

    try:
        return with_database(app).run_once(work)
    except ValidationError as exc:
        raise click.ClickException(str(exc.errors)) from exc


@click.group(cls=LitestarGroup, name="users")
def users_group() -> None:
    """Manage users."""


@users_group.command(name="create")  # type: ignore[untyped-decorator]  # LitestarGroup.command is untyped
@click.argument("username")
@click.option("--password", help="The password (at least 8 characters); visible in `ps` and shell history.")
@_password_options
@click.option("--staff", is_flag=True, default=False, help="Make the user staff.")
def create_user(
    app: Litestar, username: str, password: str | None, password_stdin: bool, password_env: str | None, staff: bool
) -> None:
    """Create a user that can log in with USERNAME and a password (asked for unless given otherwise)."""
    import msgspec

    from service.errors import ValidationError
    from service.users.schemas import UserCreate
    from service.users.services import UserService

    secret = read_password(password_stdin, password_env, password)
    try:
        data = msgspec.convert({"username": username, "password": secret, "is_staff": staff}, UserCreate)
    except msgspec.ValidationError as exc:
        raise click.BadParameter(str(exc)) from exc

    async def work(runtime: Runtime) -> Any:
        async with runtime.session() as session:
            return await UserService(session=session, runtime=runtime).create_user(data)

    try:
        user = with_database(app).run_once(work)
    except ValidationError as exc:
        raise click.ClickException(str(exc.errors)) from exc
    click.echo(f"Created {'staff ' if staff else ''}user {user.username} (id {user.id}, uuid {user.uuid}).")


@users_group.command(name="list")  # type: ignore[untyped-decorator]
def list_users(app: Litestar) -> None:
    """List every user: id, uuid, username, staff, active, last login."""
    from sqlalchemy import select

    from service.users.models import User

    async def work(runtime: Runtime) -> list[User]:
        async with runtime.session() as session:
            return list((await session.scalars(select(User).order_by(User.id))).all())

    for user in with_database(app).run_once(work):
        last_login = user.last_login.isoformat(timespec="seconds") if user.last_login else "never"
        click.echo(
            f"{user.id}\t{user.uuid}\t{user.username}\t{'staff' if user.is_staff else 'user'}\t"
            f"{'active' if user.is_active else 'inactive'}\t{last_login}"
        )


@users_group.command(name="set-password")  # type: ignore[untyped-decorator]
@click.argument("username")
@_password_options
def set_password(app: Litestar, username: str, password_stdin: bool, password_env: str | None) -> None:
    """Set USERNAME's password (asked for unless given otherwise)."""
    _update_user(app, username, {"password": read_password(password_stdin, password_env)})
    click.echo(f"Password of {username} changed.")


@users_group.command(name="deactivate")  # type: ignore[untyped-decorator]
@click.argument("username")
def deactivate_user(app: Litestar, username: str) -> None:
    """Deactivate USERNAME: they can no longer log in, and every token they hold is revoked."""
    _update_user(app, username, {"is_active": False})
    click.echo(f"Deactivated {username} and revoked their tokens.")


@users_group.command(name="unlock")  # type: ignore[untyped-decorator]  # LitestarGroup.command is untyped
@click.argument("username")
def unlock_user(app: Litestar, username: str) -> None:
    """Clear the password-login lock of USERNAME (its failed attempts in the current window), on every worker."""

    async def work(runtime: Runtime) -> bool:
        return await runtime.throttle.unlock(username)

    if with_database(app).run_once(work):
        click.echo(f"Cleared the password-login attempts of {username}: it may log in again.")
    else:
        click.echo(f"No password-login attempts were counted for {username}.")


@click.command(name="upgrade")
@click.option(
    "--no-prompt", is_flag=True, default=False, help="Do not ask for confirmation (never asked without a terminal)."
)
def upgrade_command(no_prompt: bool) -> None:
    """Migrate the database to the newest schema."""
    from service.config import load_settings
    from service.db import head_revision, upgrade_database, wait_for_database

    settings = load_settings()
    current = wait_for_database(settings, say)
    if current == head_revision():
        click.echo(f"The database is up to date (revision {current}).")
        return
    if not no_prompt and sys.stdin.isatty() and not click.confirm(f"Migrate the database from {current}?"):
        raise click.Abort
    upgrade_database(settings)
    click.echo(f"Migrated the database to revision {head_revision()}.")


@click.command(name="run")
@click.option("--host", help="Address to listen on (setting server.host, default 127.0.0.1).")
@click.option("--port", type=click.IntRange(1, 65535), help="TCP port (setting server.port, default 8000).")
@click.option("-W", "--workers", type=click.IntRange(min=1), help="Worker processes (setting server.workers).")
def run_command(host: str | None, port: int | None, workers: int | None) -> None:
    """Serve the API until SIGTERM or SIGINT, migrating the database first (setting auto_migrate)."""
    from service.config import load_settings
    from service.db import prepare_database
    from service.logs import configure_logging
    from service.runtime import Runtime
    from service.serving import ServeOptions, serve

    settings = load_settings()
    configure_logging(settings.log)
    prepare_database(settings, say)
    announce_first_start(Runtime.build(settings))
    server = settings.server
    options = ServeOptions(
        host=host or server.host,
        port=port or server.port,
        workers=workers or server.workers,
        graceful_seconds=server.graceful_seconds,
    )
    sys.exit(serve(options))


class TokengateCLIPlugin(CLIPlugin):
    """Puts the project's commands into Litestar's CLI and hides the framework's dangerous or irrelevant ones."""

    def on_cli_init(self, cli: click.Group) -> None:
        """Register the project's commands (``run`` and ``database upgrade`` replace the framework's).

        advanced-alchemy's plugin may add its ``database`` group after this one runs: it adds the same group
        object, so the changes made to it here stay.
        """
        from advanced_alchemy.extensions.litestar.cli import database_group

        from service.leaks.cli import tokens_group
        from service.policy_tools.cli import policy_group

        cli.add_command(users_group)
        cli.add_command(policy_group)
        cli.add_command(tokens_group)
        cli.add_command(run_command)
        cli.add_command(database_group)
        database_group.add_command(upgrade_command)
        for group, names in ((cli, HIDDEN_COMMANDS), (database_group, HIDDEN_DATABASE_COMMANDS)):
            for name in names:
                if name in group.commands:
                    group.commands[name].hidden = True


def _fail_fast_on_bad_configuration() -> None:
    """A broken ``litestar.toml``, ``TOKENGATE_*`` variable or policy ends the command with one clear line."""
    from pathlib import Path

    from service.config import ConfigError, load_settings
    from service.policy import PolicyEngine, PolicyError

    try:
        PolicyEngine.from_directory(Path(load_settings().policy_dir))
    except (ConfigError, PolicyError) as exc:
        click.secho(f"tokengate: {exc}", fg="red", err=True)
        sys.exit(2)


def main() -> None:
    """Entry point of the ``tokengate`` console script."""
    if sys.argv[1:2] == ["policy"]:  # runs without building the app, so a broken policy can still be checked
        from service.policy_tools.cli import policy_group

        policy_group.main(args=sys.argv[2:], prog_name="tokengate policy")  # exits
    if sys.argv[1:2] == ["tokens"]:  # the scanner needs no configuration, database or app
        from service.leaks.cli import tokens_group

        tokens_group.main(args=sys.argv[2:], prog_name="tokengate tokens")  # exits
    os.environ.setdefault("LITESTAR_APP", "service.app:create_app")
    _fail_fast_on_bad_configuration()
    from litestar.cli.main import litestar_group

    from service.db import DatabaseUnavailable

    try:
        litestar_group()
    except DatabaseUnavailable as exc:
        click.secho(f"tokengate: {exc}", fg="red", err=True)
        sys.exit(1)
