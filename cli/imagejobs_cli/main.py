"""`imagejobs`: use and operate an imagejobs stack from the command line.

API commands use the HTTP API with a key: --base-url / IMAGEJOBS_BASE_URL and --api-key /
IMAGEJOBS_API_KEY. Admin commands (keys, budget, costs) talk to the stack's DynamoDB table with
your AWS credentials: name the table (--table or IMAGEJOBS_TABLE) or the stack (--stack or
IMAGEJOBS_STACK, its JobsTableName output). Against `make serve`, export the lines it prints.

  imagejobs generate "a lighthouse at dawn" --quality low --watch --out out/
  imagejobs edit photo.png "make it autumn" [--mask mask.png] --watch
  imagejobs jobs list [--status succeeded] | jobs get ID | jobs cancel ID
  imagejobs costs --since 7d --by model [--plot costs.png]
  imagejobs keys create --tenant acme [--name ci]     prints the new key once
  imagejobs keys list [--tenant acme]
  imagejobs keys revoke key_0123456789ab
  imagejobs budget set --tenant acme --daily 5 --monthly 100   (USD; "none" clears a cap)
  imagejobs budget show --tenant acme
  imagejobs share set --tenant acme --weight 3    (its share of the provider's places; 1 unless set)
  imagejobs share show --tenant acme
  imagejobs webhook-secret --tenant acme [--rotate]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from imagejobs.adapters.tenants import InvalidTenant, Tenants, check_tenant
from imagejobs.domain import budget, pricing
from imagejobs.domain.models import SIZE_PATTERN
from imagejobs_cli import api, costs


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


def _api(args: argparse.Namespace) -> api.Api:
    return api.Api(args.base_url, args.api_key)


def run_costs(args: argparse.Namespace) -> int:
    table = boto3.resource("dynamodb").Table(_table_name(args))
    return costs.run(table, by=args.by, since=args.since, plot_to=args.plot, out=sys.stdout)


MAX_CAP_USD = 1_000_000  # far above any real cap; DynamoDB numbers stop at 1E+126 anyway


def _usd(text: str | None) -> Decimal | None:
    if text is None or text.lower() == "none":
        return None
    try:
        value = Decimal(text.lstrip("$"))
    except InvalidOperation:
        raise CliError(f"{text!r} is not an amount in USD (e.g. 5 or 12.50, or 'none')") from None
    # is_finite first: comparing a Decimal NaN raises InvalidOperation
    if not value.is_finite() or value < 0 or value > MAX_CAP_USD:
        raise CliError(f"{text!r}: a cap must be an amount from 0 to {MAX_CAP_USD:,} USD")
    return value


def _when(at: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(at)) if at else "-"


def keys_create(args: argparse.Namespace) -> int:
    api_key, info = _tenants(args).create_key(args.tenant, time.time(), name=args.name or "")
    print(f"created {info.key_id} for tenant {info.tenant}; the key (shown only now, stored hashed):")
    print(api_key)
    return 0


def keys_list(args: argparse.Namespace) -> int:
    keys = _tenants(args).list_keys(args.tenant)
    rows = [[k.key_id, k.tenant, k.name or "-", _when(k.created_at), _when(k.revoked_at)] for k in keys]
    api.table(rows, ["KEY ID", "TENANT", "NAME", "CREATED", "REVOKED"])
    return 0


def keys_revoke(args: argparse.Namespace) -> int:
    info = _tenants(args).revoke_key(args.key_id, time.time())
    if info is None:
        raise CliError(f"no key {args.key_id!r} (key ids look like key_0123456789ab; see `imagejobs keys list`)")
    if args.stack:
        flushed = _flush_authorizer_cache(args.stack)
        print(f"revoked {info.key_id} of tenant {info.tenant} at {_when(info.revoked_at)}; {flushed}")
    else:
        print(
            f"revoked {info.key_id} of tenant {info.tenant} at {_when(info.revoked_at)}; cached authorizer answers "
            "keep it working for up to AuthorizerCacheSeconds (name the stack, --stack, to flush them now)"
        )
    return 0


ROTATION_OVERLAP_HOURS = 24
API_STAGE = "prod"  # template.yaml: Api's StageName


def _flush_authorizer_cache(stack: str, cloudformation: Any = None, apigateway: Any = None) -> str:
    """Drop the stage's cached authorizer answers (API Gateway FlushStageAuthorizersCache), so a
    revoked key stops working now rather than when its cache entry expires. What was done, as a
    sentence; the revocation stands either way."""
    try:
        resource = (cloudformation or boto3.client("cloudformation")).describe_stack_resource(
            StackName=stack, LogicalResourceId="Api"
        )
        api_id = resource["StackResourceDetail"]["PhysicalResourceId"]
        (apigateway or boto3.client("apigateway")).flush_stage_authorizers_cache(restApiId=api_id, stageName=API_STAGE)
    except (ClientError, BotoCoreError) as exc:
        return (
            f"the authorizer cache could not be flushed ({type(exc).__name__}): cached answers keep the key "
            "working for up to AuthorizerCacheSeconds"
        )
    return f"the authorizer cache of stage {API_STAGE} of API {api_id} was flushed: the key is refused from now on"


def webhook_secret(args: argparse.Namespace) -> int:
    from imagejobs.adapters.store import JobStore
    from imagejobs.domain import webhooks

    check_tenant(args.tenant)
    store = JobStore(_table_name(args))
    if args.rotate:
        secret = store.replace_webhook_secret(
            args.tenant, webhooks.new_secret(), time.time(), ROTATION_OVERLAP_HOURS * 3600
        )
        print(
            f"new webhook signing secret of tenant {args.tenant} (signs every webhook from now on; the old one "
            f"signs them too, a second signature, for {ROTATION_OVERLAP_HOURS} h while receivers switch):"
        )
    else:
        secret = store.ensure_webhook_secret(args.tenant, webhooks.new_secret())
        print(f"webhook signing secret of tenant {args.tenant} (Standard Webhooks; verify webhook-signature with it):")
    print(secret)
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
    api.table(rows, ["PERIOD", "UTC", "CAP", "SPENT OR RESERVED"])
    return 0


def share_set(args: argparse.Namespace) -> int:
    try:
        _tenants(args).set_share_weight(args.tenant, args.weight)
    except ValueError as exc:
        print(f"imagejobs: {exc}", file=sys.stderr)
        return 2
    return share_show(args)


def share_show(args: argparse.Namespace) -> int:
    print(f"tenant {args.tenant}: share weight {_tenants(args).share_weight(args.tenant)}")
    return 0


def _money(value: Decimal | None) -> str:
    return "none" if value is None else budget.usd(value)  # as set, not rounded to cents


def _size(value: str) -> str:
    """auto or WIDTHxHEIGHT; whether the model takes it is the catalog's rule, checked by the API."""
    if not re.fullmatch(SIZE_PATTERN, value):
        raise argparse.ArgumentTypeError(f"{value!r} is not auto or WIDTHxHEIGHT (e.g. 1024x1024)")
    return value


def _sizes_help() -> str:
    """What each catalog model takes (its `rules.size`), from the catalog the stack ships."""
    parts = []
    for name, entry in pricing.price_table()["models"].items():
        rules = (entry.get("rules") or {}).get("size") or {}
        if not rules.get("sizes"):
            continue
        custom = rules.get("custom")
        extra = f", or sides multiples of {custom['multiple_of']} up to {custom['max_edge']}" if custom else ""
        parts.append(f"{name}: {'|'.join(rules.get('sizes', []))}{extra}")
    return "; ".join(parts)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="imagejobs", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    # The API's settings before the command too (imagejobs --api-key K generate ...): a command's
    # own, when given, wins (SUPPRESS: an option left out does not overwrite the root's).
    root.add_argument("--base-url", default=os.environ.get("IMAGEJOBS_BASE_URL"), help="the API's base URL")
    root.add_argument("--api-key", default=os.environ.get("IMAGEJOBS_API_KEY"), help="your API key")
    commands = root.add_subparsers(dest="command", required=True)

    def admin(parent: Any, name: str, help_: str) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = parent.add_parser(name, help=help_)
        sub.add_argument("--table", default=os.environ.get("IMAGEJOBS_TABLE"), help="the stack's jobs table")
        sub.add_argument("--stack", default=os.environ.get("IMAGEJOBS_STACK"), help="or the stack's name")
        return sub

    def client(parent: Any, name: str, help_: str) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = parent.add_parser(name, help=help_)
        sub.add_argument("--base-url", default=argparse.SUPPRESS, help="the API's base URL")
        sub.add_argument("--api-key", default=argparse.SUPPRESS, help="your API key")
        return sub

    def image_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--size", type=_size, help=f"auto or WIDTHxHEIGHT; {_sizes_help()}")
        sub.add_argument("--quality", choices=["low", "medium", "high", "auto"])
        sub.add_argument("--n", type=int, help="images, 1-10")
        sub.add_argument("--format", dest="output_format", choices=["png", "jpeg", "webp"])
        sub.add_argument("--background", choices=["transparent", "opaque", "auto"])
        sub.add_argument("--model")
        sub.add_argument("--webhook-url", dest="webhook_url")
        sub.add_argument("--watch", action="store_true", help="follow the job and download its images")
        sub.add_argument("--out", default="out", help="where --watch saves images (default: out/)")
        sub.add_argument("--interval", type=float, default=1.0, help="seconds between looks while watching")

    generate = client(commands, "generate", "submit a generation job")
    generate.add_argument("prompt")
    image_options(generate)
    generate.set_defaults(run=lambda args: api.generate(_api(args), args))
    edit = client(commands, "edit", "submit an edit job: IMAGE... PROMPT")
    edit.add_argument("images", nargs="+", metavar="IMAGE")
    edit.add_argument("prompt")
    edit.add_argument("--mask")
    image_options(edit)
    edit.set_defaults(run=lambda args: api.edit(_api(args), args))
    jobs = commands.add_parser("jobs", help="your jobs").add_subparsers(dest="action", required=True)
    jobs_list = client(jobs, "list", "newest first")
    jobs_list.add_argument("--status", choices=sorted(api.FINAL | {"queued", "in_progress"}))
    jobs_list.add_argument("--limit", type=int, default=20)
    jobs_list.set_defaults(run=lambda args: api.jobs_list(_api(args), args))
    jobs_get = client(jobs, "get", "one job, as JSON")
    jobs_get.add_argument("job_id")
    jobs_get.set_defaults(run=lambda args: api.jobs_get(_api(args), args))
    jobs_cancel = client(jobs, "cancel", "cancel a running job")
    jobs_cancel.add_argument("job_id")
    jobs_cancel.set_defaults(run=lambda args: api.jobs_cancel(_api(args), args))

    costs_ = admin(commands, "costs", "what jobs cost, from the job records")
    costs_.add_argument("--since", default="7d", help="e.g. 12h, 7d, 2w (default 7d)")
    costs_.add_argument("--by", default="tenant", choices=costs.GROUPS)
    costs_.add_argument("--plot", metavar="FILE.png", help="also write a bar chart")
    costs_.set_defaults(run=run_costs)

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

    secret = admin(commands, "webhook-secret", "a tenant's webhook signing secret (made if it has none)")
    secret.add_argument("--tenant", required=True)
    secret.add_argument("--rotate", action="store_true", help="replace it with a new one")
    secret.set_defaults(run=webhook_secret)

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

    shares = commands.add_parser("share", help="a tenant's weight in the provider's places (ProviderMaxConcurrency)")
    share_actions = shares.add_subparsers(dest="action", required=True)
    share = admin(share_actions, "set", "set a tenant's weight: it gets places in proportion to it when others wait")
    share.add_argument("--tenant", required=True)
    share.add_argument("--weight", type=int, required=True, help="1 to 1000 (1 unless set)")
    share.set_defaults(run=share_set)
    share_get = admin(share_actions, "show", "a tenant's weight")
    share_get.add_argument("--tenant", required=True)
    share_get.set_defaults(run=share_show)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.run(args))
    except (CliError, InvalidTenant, api.ApiProblem, costs.CostsProblem) as exc:
        print(f"imagejobs: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        print("imagejobs: interrupted", file=sys.stderr)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        print(f"imagejobs: AWS refused: {error.get('Code')}: {error.get('Message')}", file=sys.stderr)
    except BotoCoreError as exc:
        print(f"imagejobs: cannot reach AWS: {exc}", file=sys.stderr)
    except Exception as exc:
        if os.environ.get("IMAGEJOBS_DEBUG"):
            raise
        print(f"imagejobs: {type(exc).__name__}: {exc} (IMAGEJOBS_DEBUG=1 shows the traceback)", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
