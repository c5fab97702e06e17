"""`imagejobs`: operate an imagejobs stack from the command line.

Admin commands talk to the stack's DynamoDB table with your AWS credentials: name the table
(--table or IMAGEJOBS_TABLE) or the stack (--stack or IMAGEJOBS_STACK, its JobsTableName output).
Against `make serve`, paste the settings it prints (AWS_ENDPOINT_URL, IMAGEJOBS_TABLE, ...) first.

  imagejobs keys create --tenant acme [--name ci]     prints the new key once
  imagejobs keys list [--tenant acme]
  imagejobs keys revoke key_0123456789ab
  imagejobs budget set --tenant acme --daily 5 --monthly 100   (USD; "none" clears a cap)
  imagejobs budget show --tenant acme
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from imagejobs import budget
from imagejobs.tenants import InvalidTenant, Tenants


class CliError(Exception):
    """A problem the user can fix; shown as one line, exit status 1."""


def _table_name(args: argparse.Namespace) -> str:
    if args.table:
        return str(args.table)
    if args.stack:
        outputs = boto3.client("cloudformation").describe_stacks(StackName=args.stack)["Stacks"][0].get("Outputs", [])
        for output in outputs:
            if output["OutputKey"] == "JobsTableName":
                return str(output["OutputValue"])
        raise CliError(f"stack {args.stack!r} has no JobsTableName output; is it an imagejobs stack?")
    raise CliError("name the jobs table: --table NAME (or IMAGEJOBS_TABLE), or --stack NAME (or IMAGEJOBS_STACK)")


def _tenants(args: argparse.Namespace) -> Tenants:
    return Tenants(_table_name(args))


def _usd(text: str | None) -> Decimal | None:
    if text is None or text.lower() == "none":
        return None
    try:
        value = Decimal(text.lstrip("$"))
    except InvalidOperation:
        raise CliError(f"{text!r} is not an amount in USD (e.g. 5 or 12.50, or 'none')") from None
    if value < 0 or not value.is_finite():
        raise CliError(f"{text!r}: a cap must be zero or more")
    return value


def _when(at: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(at)) if at else "-"


def _print_table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=False)]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=False)).rstrip())


def keys_create(args: argparse.Namespace) -> int:
    api_key, info = _tenants(args).create_key(args.tenant, time.time(), name=args.name or "")
    print(f"created {info.key_id} for tenant {info.tenant}; the key (shown only now, stored hashed):")
    print(api_key)
    return 0


def keys_list(args: argparse.Namespace) -> int:
    keys = _tenants(args).list_keys(args.tenant)
    rows = [[k.key_id, k.tenant, k.name or "-", _when(k.created_at), _when(k.revoked_at)] for k in keys]
    _print_table(rows, ["KEY ID", "TENANT", "NAME", "CREATED", "REVOKED"])
    return 0


def keys_revoke(args: argparse.Namespace) -> int:
    info = _tenants(args).revoke_key(args.key_id, time.time())
    if info is None:
        raise CliError(f"no key {args.key_id!r} (key ids look like key_0123456789ab; see `imagejobs keys list`)")
    print(
        f"revoked {info.key_id} of tenant {info.tenant} at {_when(info.revoked_at)}; cached authorizer answers "
        "keep it working for up to AuthorizerCacheSeconds"
    )
    return 0


def budget_set(args: argparse.Namespace) -> int:
    tenants = _tenants(args)
    current = tenants.caps(args.tenant)
    daily = _usd(args.daily) if args.daily is not None else current.daily_usd
    monthly = _usd(args.monthly) if args.monthly is not None else current.monthly_usd
    tenants.set_caps(args.tenant, daily_usd=daily, monthly_usd=monthly)
    return budget_show(args)


def budget_show(args: argparse.Namespace) -> int:
    tenants = _tenants(args)
    caps = tenants.caps(args.tenant)
    day, month = budget.periods(time.time())
    rows = [
        ["daily", day, _money(caps.daily_usd), f"${tenants.spent(args.tenant, day):.4f}"],
        ["monthly", month, _money(caps.monthly_usd), f"${tenants.spent(args.tenant, month):.4f}"],
    ]
    print(f"tenant {args.tenant}")
    _print_table(rows, ["PERIOD", "UTC", "CAP", "SPENT OR RESERVED"])
    return 0


def _money(value: Decimal | None) -> str:
    return "none" if value is None else f"${value:.2f}"


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="imagejobs", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = root.add_subparsers(dest="command", required=True)

    def admin(parent: Any, name: str, help_: str) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = parent.add_parser(name, help=help_)
        sub.add_argument("--table", default=os.environ.get("IMAGEJOBS_TABLE"), help="the stack's jobs table")
        sub.add_argument("--stack", default=os.environ.get("IMAGEJOBS_STACK"), help="or the stack's name")
        return sub

    keys = commands.add_parser("keys", help="API keys per tenant").add_subparsers(dest="action", required=True)
    create = admin(keys, "create", "make a key for a tenant (printed once)")
    create.add_argument("--tenant", required=True)
    create.add_argument("--name", help="a label for the key (who or what uses it)")
    create.set_defaults(run=keys_create)
    listing = admin(keys, "list", "list keys (ids, never the keys)")
    listing.add_argument("--tenant")
    listing.set_defaults(run=keys_list)
    revoke = admin(keys, "revoke", "revoke a key by its id")
    revoke.add_argument("key_id")
    revoke.set_defaults(run=keys_revoke)

    budgets = commands.add_parser("budget", help="per-tenant spending caps (USD, UTC day and month)")
    actions = budgets.add_subparsers(dest="action", required=True)
    set_ = admin(actions, "set", "set or clear (none) a tenant's daily and monthly caps")
    set_.add_argument("--tenant", required=True)
    set_.add_argument("--daily", help="USD per UTC day, or none")
    set_.add_argument("--monthly", help="USD per UTC month, or none")
    set_.set_defaults(run=budget_set)
    show = admin(actions, "show", "a tenant's caps and what it has spent or reserved")
    show.add_argument("--tenant", required=True)
    show.set_defaults(run=budget_show)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.run(args))
    except (CliError, InvalidTenant) as exc:
        print(f"imagejobs: {exc}", file=sys.stderr)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        print(f"imagejobs: AWS refused: {error.get('Code')}: {error.get('Message')}", file=sys.stderr)
    except BotoCoreError as exc:
        print(f"imagejobs: cannot reach AWS: {exc}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
