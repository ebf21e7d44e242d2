"""The ``tokengate`` command: Litestar's CLI with the app preset, plus the project's own groups."""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import click
from litestar.cli._utils import LitestarGroup
from litestar.plugins import CLIPlugin

if TYPE_CHECKING:
    from litestar import Litestar

    from service.config import Settings
    from service.runtime import Runtime

T = TypeVar("T")


def run_with(runtime: Runtime, work: Callable[[Runtime], Awaitable[T]]) -> T:
    """Run ``work`` on a fresh event loop, then release the runtime's database connections."""

    async def main() -> T:
        try:
            return await work(runtime)
        finally:
            await runtime.alchemy.get_engine().dispose()

    return anyio.run(main)


async def _count_staff(runtime: Runtime) -> int:
    from sqlalchemy import func, select

    from service.users.models import User

    async with runtime.session() as session:
        return int(await session.scalar(select(func.count()).select_from(User).where(User.is_staff.is_(True))) or 0)


def announce_first_start(runtime: Runtime) -> None:
    """Tell the operator how to make the first staff user when there is none."""
    if run_with(runtime, _count_staff) == 0:
        click.secho(
            "No staff user yet. Create one with:  tokengate users create admin --password '<password>' --staff",
            fg="yellow",
        )


@click.group(cls=LitestarGroup, name="users")
def users_group() -> None:
    """Manage users."""


@users_group.command(name="create")  # type: ignore[untyped-decorator]  # LitestarGroup.command is untyped
@click.argument("username")
@click.option("--password", required=True, help="The user's password (at least 8 characters).")
@click.option("--staff", is_flag=True, default=False, help="Make the user staff.")
def create_user(app: Litestar, username: str, password: str, staff: bool) -> None:
    """Create a user that can log in with USERNAME and PASSWORD."""
    import msgspec

    from service.errors import ValidationError
    from service.users.schemas import UserCreate
    from service.users.services import UserService

    try:
        data = msgspec.convert({"username": username, "password": password, "is_staff": staff}, UserCreate)
    except msgspec.ValidationError as exc:
        raise click.BadParameter(str(exc)) from exc

    async def work(runtime: Runtime) -> Any:
        async with runtime.session() as session:
            return await UserService(session=session, runtime=runtime).create_user(data)

    try:
        user = run_with(app.state.runtime, work)
    except ValidationError as exc:
        raise click.ClickException(str(exc.errors)) from exc
    click.echo(f"Created {'staff ' if staff else ''}user {user.username} (id {user.id}, uuid {user.uuid}).")


def disable_server_proxy_headers() -> None:
    """Keep uvicorn from rewriting the client address from ``X-Forwarded-For`` before tokengate sees the request.

    uvicorn does that by default for peers in ``FORWARDED_ALLOW_IPS`` (loopback), taking the header's word before
    ``security.trusted_proxies`` is consulted — so ``trusted_proxies = []`` would trust the header anyway. The client
    address is decided by tokengate alone (``service/security/client_ip.py``): ``--no-proxy-headers`` for worker
    subprocesses (``--wc``, ``--reload``, read from ``UVICORN_PROXY_HEADERS``), and no trusted peer at all for the
    in-process server, which takes no such option from ``tokengate run`` (an empty ``FORWARDED_ALLOW_IPS``).
    """
    os.environ["UVICORN_PROXY_HEADERS"] = "false"
    os.environ["FORWARDED_ALLOW_IPS"] = ""


@users_group.command(name="unlock")  # type: ignore[untyped-decorator]  # LitestarGroup.command is untyped
@click.argument("username")
def unlock_user(app: Litestar, username: str) -> None:
    """Clear the password-login lock of USERNAME (its failed attempts in the current window), on every worker."""

    async def work(runtime: Runtime) -> bool:
        return await runtime.throttle.unlock(username)

    if run_with(app.state.runtime, work):
        click.echo(f"Cleared the password-login attempts of {username}: it may log in again.")
    else:
        click.echo(f"No password-login attempts were counted for {username}.")


class TokengateCLIPlugin(CLIPlugin):
    """Adds the project's groups to Litestar's CLI and migrates the database before ``tokengate run`` serves."""

    @contextmanager
    def server_lifespan(self, app: Litestar) -> Iterator[None]:
        """Bring the schema up to date once, before any worker starts, and hint at creating a staff user."""
        from service.db import upgrade_database

        settings: Settings = app.state.runtime.settings
        disable_server_proxy_headers()
        if settings.auto_migrate:
            upgrade_database(settings)
        announce_first_start(app.state.runtime)
        yield

    def on_cli_init(self, cli: click.Group) -> None:
        """Register the project's command groups."""
        from service.leaks.cli import tokens_group
        from service.policy.cli import policy_group

        cli.add_command(users_group)
        cli.add_command(policy_group)
        cli.add_command(tokens_group)


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
        from service.policy.cli import policy_group

        policy_group.main(args=sys.argv[2:], prog_name="tokengate policy")  # exits
    if sys.argv[1:2] == ["tokens"]:  # the scanner needs no configuration, database or app
        from service.leaks.cli import tokens_group

        tokens_group.main(args=sys.argv[2:], prog_name="tokengate tokens")  # exits
    os.environ.setdefault("LITESTAR_APP", "service.app:create_app")
    _fail_fast_on_bad_configuration()
    from litestar.cli.main import litestar_group

    litestar_group()
