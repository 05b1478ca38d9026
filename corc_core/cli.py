"""``corc``: order, list and remove machines from the shell; pick shapes; reap leaked resources."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from .config import config_path, default_config, load_config, section
from .credentials import SSHAuthenticator
from .errors import CorcError, one_line
from .orchestrator import Orchestrator
from .registry import get_provider, provider_names
from .resources import Resource
from .shapes import choose_shape
from .store import RecordStore


def _store(config: dict[str, Any]) -> RecordStore:
    return RecordStore(Path(section(config, "store").get("path") or "~/.corc/records.sqlite"))


def _orchestrator(name: str, config: dict[str, Any], owner: str) -> Orchestrator:
    provider = get_provider(name)
    return provider(
        provider.load_config_options(config),
        store=_store(config),
        owner=owner,
        ssh=SSHAuthenticator(**_ssh_options(config)),
    )


def _emit(args: argparse.Namespace, data: Any, text: str) -> None:
    print(json.dumps(data, indent=2, default=str) if args.json else text)


def _resource_line(resource: Resource) -> str:
    address = resource.addresses[0] if resource.addresses else "-"
    return f"{resource.id}\t{resource.state}\t{address}:{resource.ssh_port}"


# -- commands -------------------------------------------------------------------------------------


async def cmd_config_generate(args: argparse.Namespace) -> int:
    path = Path(args.output).expanduser() if args.output else config_path()
    if path.exists() and not args.force:
        raise CorcError(f"{path} exists; use --force to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        yaml.safe_dump(default_config(), out, sort_keys=False)
    _emit(args, {"path": str(path)}, f"wrote {path}")
    return 0


async def cmd_create(args: argparse.Namespace) -> int:
    config = load_config()
    orchestrator = _orchestrator(args.provider, config, args.owner)
    orchestrator.ready_timeout = args.timeout
    request = orchestrator.make_resource_config(
        cpu=args.cpu,
        memory_gb=args.memory,
        gpus=args.gpus,
        image=args.image or "",
        name=args.name,
        resource_type=args.resource_type,
    )
    assert orchestrator.ssh is not None
    credentials = await orchestrator.ssh.credentials_for(args.owner, args.remote_user or None)
    resource = await orchestrator.setup(request, credentials)  # pins the reported host key
    _emit(args, resource.to_dict(), _resource_line(resource))
    return 0


def _ssh_options(config: dict[str, Any]) -> dict[str, Any]:
    options = section(config, "ssh")
    return {
        "directory": options.get("directory", "~/.corc/ssh"),
        "use_certificates": bool(options.get("use_certificates", False)),
    }


async def cmd_list(args: argparse.Namespace) -> int:
    orchestrator = _orchestrator(args.provider, load_config(), args.owner)
    resources = await orchestrator.list_resources()
    _emit(
        args,
        [r.to_dict() for r in resources],
        "\n".join(map(_resource_line, resources)) or "no resources",
    )
    return 0


async def cmd_get(args: argparse.Namespace) -> int:
    orchestrator = _orchestrator(args.provider, load_config(), args.owner)
    resource = await orchestrator.get_resource_state(args.id)
    _emit(args, resource.to_dict(), _resource_line(resource))
    return 0


async def cmd_delete(args: argparse.Namespace) -> int:
    """Delete through the resource's record (retries, record closed, host key forgotten)."""
    orchestrator = _orchestrator(args.provider, load_config(), args.owner)
    orchestrator.resource = await orchestrator.get_resource_state(args.id)
    orchestrator.note_created(args.id)
    for record in await orchestrator.store.list(args.provider, live_only=True):
        if record.resource_id == args.id:
            orchestrator.record = record
    await orchestrator.tear_down()
    _emit(args, {"deleted": args.id}, f"deleted {args.id}")
    return 0


async def cmd_shapes(args: argparse.Namespace) -> int:
    orchestrator = _orchestrator(args.provider, load_config(), args.owner)
    choice = choose_shape(await orchestrator.list_shapes(), args.cpu, args.memory, args.gpus)
    data = {
        "shape": choice.shape.name,
        "cpu": choice.cpu,
        "memory_gb": choice.memory_gb,
        "gpus": choice.shape.gpus,
        "reasons": choice.reasons,
    }
    text = f"{choice.shape.name}\n" + "\n".join(f"  {reason}" for reason in choice.reasons[:12])
    _emit(args, data, text)
    return 0


async def cmd_reap(args: argparse.Namespace) -> int:
    """Resources of this deployment with no live record (crashes, failed deletes): listed, and
    deleted with --yes (each delete retried with backoff). Exit 1 if some could not be deleted."""
    config = load_config()
    names = [args.provider] if args.provider else _configured_providers(config)
    orphans = []
    for name in names:
        orchestrator = _orchestrator(name, config, args.owner)
        orphans += await orchestrator.reap(delete=args.yes, attempts=args.attempts)
    lines = []
    for orphan in orphans:
        if "error" in orphan:
            verb = f"NOT deleted: {orphan['error']}"
        else:
            verb = "deleted" if args.yes else "would delete (dry run; --yes to delete)"
        lines.append(f"{orphan['provider']}\t{orphan['id']}\t{verb}")
    _emit(args, orphans, "\n".join(lines) or "no orphaned resources")
    return 1 if any("error" in orphan for orphan in orphans) else 0


def _configured_providers(config: dict[str, Any]) -> list[str]:
    """Providers with a section that names an account (empty credentials are skipped)."""
    names = []
    for name in sorted(set(section(config, "providers")) & set(provider_names())):
        provider = get_provider(name)
        try:
            if provider.is_configured(provider.load_config_options(config)):
                names.append(name)
        except CorcError:
            continue
    return names


# -- argument parsing -----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print JSON")
    common.add_argument("--owner", default=getpass.getuser(), help="owner recorded for resources")
    common.add_argument(
        "-v", "--verbose", action="store_true", help="log each step (retries, tear-downs)"
    )

    parser = argparse.ArgumentParser(
        prog="corc", description="Order, list and remove machines on clouds and local pools."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    config = commands.add_parser("config", help="corc's configuration file")
    config_commands = config.add_subparsers(dest="action", required=True)
    generate = config_commands.add_parser(
        "generate", parents=[common], help="write a configuration with every provider's section"
    )
    generate.add_argument("--output", help=f"where (default: $CORC_CONFIG_FILE or {config_path()})")
    generate.add_argument("--force", action="store_true", help="overwrite an existing file")
    generate.set_defaults(run=cmd_config_generate)

    shapes = commands.add_parser(
        "shapes", parents=[common], help="which shape a request would get, and why"
    )
    shapes.add_argument("--provider", required=True, choices=provider_names())
    _request_arguments(shapes)
    shapes.set_defaults(run=cmd_shapes)

    reap = commands.add_parser(
        "reap", parents=[common], help="find resources tagged by gridhub that have no live record"
    )
    reap.add_argument("--provider", choices=provider_names(), help="only this provider")
    reap.add_argument("--yes", action="store_true", help="delete them (default: dry run)")
    reap.add_argument(
        "--attempts", type=int, default=5, help="tries per delete, with doubling pauses"
    )
    reap.set_defaults(run=cmd_reap)

    for name in provider_names():
        provider = commands.add_parser(name, help=f"resources of the {name} provider")
        groups = provider.add_subparsers(dest="group", required=True)
        _instance_commands(groups.add_parser("instance", help="machines"), name, common)
        orchestration = groups.add_parser("orchestration", help="the same, as in the corc paper")
        nested = orchestration.add_subparsers(dest="subgroup", required=True)
        _instance_commands(nested.add_parser("instance", help="machines"), name, common)
    return parser


def _request_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cpu", type=int, default=1, help="minimum CPUs")
    parser.add_argument("--memory", type=float, default=1.0, help="minimum memory, GB")
    parser.add_argument("--gpus", type=int, default=0, help="minimum GPUs")


def _instance_commands(
    parser: argparse.ArgumentParser, provider: str, common: argparse.ArgumentParser
) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", parents=[common], help="order a machine and wait for it")
    _request_arguments(create)
    create.add_argument("--image", help="image id or name")
    create.add_argument("--name", default="corc-instance", help="display name")
    create.add_argument("--remote-user", help="login user on the machine (default: owner)")
    create.add_argument(
        "--timeout", type=float, default=900, help="seconds to wait until we can log in"
    )
    kinds = [kind.value for kind in get_provider(provider).resource_types]
    create.add_argument(
        "--resource-type",
        choices=kinds,
        default=kinds[0],
        help=f"what to make (default: {kinds[0]})",
    )
    create.set_defaults(run=cmd_create, provider=provider)
    listing = actions.add_parser("list", parents=[common], help="machines tagged by gridhub")
    listing.set_defaults(run=cmd_list, provider=provider)
    for action, run, text in (
        ("get", cmd_get, "show one machine"),
        ("delete", cmd_delete, "remove one machine"),
    ):
        sub = actions.add_parser(action, parents=[common], help=text)
        sub.add_argument("id", help="the resource id")
        sub.set_defaults(run=run, provider=provider)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Errors are printed once, as one line, below; step logs only when asked for.
    logging.basicConfig(
        level=logging.INFO if getattr(args, "verbose", False) else logging.CRITICAL,
        format="corc: %(message)s",
    )
    try:
        return asyncio.run(args.run(args))
    except CorcError as error:
        print(f"corc: error: {error}", file=sys.stderr)
        return 1
    except Exception as error:  # a bug or an SDK surprise: still one line, no traceback
        print(f"corc: error: unexpected {type(error).__name__}: {one_line(error)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("corc: interrupted; anything half-made was torn down", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
