"""Tenants: API keys (stored hashed) and budget caps, in the jobs table.

Kept free of pydantic and the rest of the package: the authorizer imports only this and boto3.

Items:
- ``apikey#<sha256 of the key>``: tenant, key id, name, created_at, revoked_at. Listed through the
  by-tenant index under the partition ``#apikeys`` (tenant names cannot start with ``#``).
- ``tenant#<tenant>``: webhook secret, daily_budget_usd, monthly_budget_usd.
- ``spend#<tenant>#<YYYY-MM-DD>`` and ``spend#<tenant>#<YYYY-MM>``: reserved-or-billed USD for the
  UTC day and month (written by the job store, read here for reports).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import ClientError

from imagejobs.adapters.dynamo import is_condition_failure, to_dynamo
from imagejobs.domain.budget import Caps

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table
else:
    Table = Any

KEY_PREFIX = "apikey#"
KEYS_PARTITION = "#apikeys"
TENANT_PREFIX = "tenant#"
SPEND_PREFIX = "spend#"
LIST_INDEX = "by-tenant"
TENANT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
KEY_ID = re.compile(r"^key_[0-9a-f]{12}$")


class InvalidTenant(ValueError):
    pass


def check_tenant(tenant: str) -> str:
    if not TENANT_NAME.match(tenant):
        raise InvalidTenant(
            f"tenant {tenant!r} is not a valid name: 1-64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return tenant


def bearer_token(authorization: str | None) -> str:
    """The key in an 'Authorization: Bearer <key>' header ('' when there is none)."""
    scheme, _, key = (authorization or "").strip().partition(" ")
    return key.strip() if scheme.lower() == "bearer" else ""


def hash_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()


def key_id(api_key: str) -> str:
    """The public name of a key (safe to log and show): a prefix of its hash."""
    return "key_" + hash_key(api_key)[:12]


def new_api_key() -> str:
    return "sk-ij-" + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class KeyInfo:
    key_id: str
    tenant: str
    name: str
    created_at: float
    revoked_at: float | None = None


def spend_key(tenant: str, period: str) -> str:
    return f"{SPEND_PREFIX}{tenant}#{period}"


def _key_info(item: dict[str, Any]) -> KeyInfo:
    revoked = item.get("revoked_at")
    return KeyInfo(
        key_id=str(item["key_id"]),
        tenant=str(item["tenant"]),
        name=str(item.get("name") or ""),
        created_at=float(item["created_at"]),
        revoked_at=float(revoked) if revoked is not None else None,
    )


class TableAdapter:
    """An adapter over the jobs table (injected, or made on first use: a cold start pays only
    for what the invocation needs)."""

    def __init__(self, table_name: str, table: Table | None = None) -> None:
        self._table_name = table_name
        self._made_table = table

    def warm(self) -> None:
        """Make the table resource now (wiring.warm: at init, when every invocation reads it)."""
        self._table  # noqa: B018  (the property makes it)

    @property
    def _table(self) -> Table:
        if self._made_table is None:
            self._made_table = boto3.resource("dynamodb").Table(self._table_name)
        return self._made_table

    def _write_versioned(self, pk: str, sets: str, values: dict[str, Any], version: int, removes: str = "") -> bool:
        """Write an item decided from its state read at `version` (SET `sets`, REMOVE `removes`),
        the version moving on by one; False when another writer came first (read again and decide
        again). The gates and the failover breakers are written so."""
        update = f"SET {sets}, version = :next" + (f" REMOVE {removes}" if removes else "")
        try:
            self._table.update_item(
                Key={"pk": pk},
                UpdateExpression=update,
                ConditionExpression="attribute_not_exists(version) OR version = :seen",
                ExpressionAttributeValues=to_dynamo({**values, ":seen": version, ":next": version + 1}),
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def spent(self, tenant: str, period: str) -> Decimal:
        """USD a tenant reserved or was billed in a period ('YYYY-MM-DD' or 'YYYY-MM'): what the
        job store's budget checks and the admin command both read."""
        item = self._table.get_item(Key={"pk": spend_key(tenant, period)}, ConsistentRead=True).get("Item")
        return Decimal(str(item["usd"])) if item and "usd" in item else Decimal(0)


class Tenants(TableAdapter):
    # -- keys ---------------------------------------------------------------------------------
    def add_key(self, api_key: str, tenant: str, created_at: float, name: str = "") -> KeyInfo:
        """Store a key by its SHA-256 only; the plaintext is shown once to whoever made it."""
        check_tenant(tenant)
        info = KeyInfo(key_id=key_id(api_key), tenant=tenant, name=name, created_at=created_at)
        self._table.put_item(
            Item={
                "pk": KEY_PREFIX + hash_key(api_key),
                "key_id": info.key_id,
                "tenant": tenant,
                "name": name,
                "created_at": Decimal(repr(created_at)),
                "list_pk": KEYS_PARTITION,
                "list_sk": f"{tenant}#{info.key_id}",
            },
            ConditionExpression="attribute_not_exists(pk)",
        )
        return info

    def create_key(self, tenant: str, created_at: float, name: str = "") -> tuple[str, KeyInfo]:
        api_key = new_api_key()
        return api_key, self.add_key(api_key, tenant, created_at, name)

    def tenant_for_key(self, api_key: str) -> str | None:
        if not api_key:
            return None
        item = self._table.get_item(Key={"pk": KEY_PREFIX + hash_key(api_key)}, ConsistentRead=True).get("Item")
        if not item or item.get("revoked_at") is not None:
            return None
        return str(item["tenant"])

    def list_keys(self, tenant: str | None = None) -> list[KeyInfo]:
        kwargs: dict[str, Any] = {
            "IndexName": LIST_INDEX,
            "KeyConditionExpression": "list_pk = :keys",
            "ExpressionAttributeValues": {":keys": KEYS_PARTITION},
        }
        if tenant is not None:
            kwargs["KeyConditionExpression"] += " AND begins_with(list_sk, :tenant)"
            kwargs["ExpressionAttributeValues"][":tenant"] = check_tenant(tenant) + "#"
        found: list[KeyInfo] = []
        while True:
            page = self._table.query(**kwargs)
            found.extend(_key_info(item) for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return sorted(found, key=lambda info: (info.tenant, info.created_at))
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def revoke_key(self, key_id_: str, at: float) -> KeyInfo | None:
        """Mark a key revoked (kept for the record). None if no such key."""
        if not KEY_ID.match(key_id_):
            return None
        kwargs: dict[str, Any] = {
            "IndexName": LIST_INDEX,
            "KeyConditionExpression": "list_pk = :keys",
            "FilterExpression": "key_id = :id",
            "ExpressionAttributeValues": {":keys": KEYS_PARTITION, ":id": key_id_},
        }
        while True:
            page = self._table.query(**kwargs)
            for item in page.get("Items", []):
                result = self._table.update_item(
                    Key={"pk": item["pk"]},
                    UpdateExpression="SET revoked_at = if_not_exists(revoked_at, :at)",
                    ExpressionAttributeValues={":at": Decimal(repr(at))},
                    ReturnValues="ALL_NEW",
                )
                return _key_info(result["Attributes"])
            if "LastEvaluatedKey" not in page:
                return None
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # -- budgets -------------------------------------------------------------------------------
    def caps(self, tenant: str) -> Caps:
        item = self._table.get_item(Key={"pk": TENANT_PREFIX + tenant}, ConsistentRead=True).get("Item") or {}
        daily, monthly = item.get("daily_budget_usd"), item.get("monthly_budget_usd")
        return Caps(
            daily_usd=Decimal(str(daily)) if daily is not None else None,
            monthly_usd=Decimal(str(monthly)) if monthly is not None else None,
        )

    # -- fair share ----------------------------------------------------------------------------
    def share_weight(self, tenant: str) -> int:
        """The tenant's weight in the provider's capacity (imagejobs.domain.admission): 1 unless set."""
        item = self._table.get_item(Key={"pk": TENANT_PREFIX + tenant}, ConsistentRead=True).get("Item") or {}
        return int(str(item.get("share_weight", 1)))

    def set_share_weight(self, tenant: str, weight: int) -> int:
        check_tenant(tenant)
        if not 1 <= weight <= 1000:
            raise ValueError("a share weight is a whole number from 1 to 1000")
        self._table.update_item(
            Key={"pk": TENANT_PREFIX + tenant},
            UpdateExpression="SET share_weight = :w, tenant = :tenant",
            ExpressionAttributeValues={":w": weight, ":tenant": tenant},
        )
        return weight

    def set_caps(self, tenant: str, *, daily_usd: Decimal | None, monthly_usd: Decimal | None) -> Caps:
        """Set (a Decimal) or clear (None) each cap."""
        check_tenant(tenant)
        sets, removes = ["tenant = :tenant"], []
        values: dict[str, Any] = {":tenant": tenant}
        for name, value in (("daily_budget_usd", daily_usd), ("monthly_budget_usd", monthly_usd)):
            if value is None:
                removes.append(name)
            else:
                if value < 0:
                    raise ValueError(f"{name} must not be negative")
                sets.append(f"{name} = :{name}")
                values[f":{name}"] = value
        update = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        self._table.update_item(
            Key={"pk": TENANT_PREFIX + tenant}, UpdateExpression=update, ExpressionAttributeValues=values
        )
        return self.caps(tenant)


class WebhookSecrets(TableAdapter):
    """The secrets that sign a tenant's webhooks, on the tenant's item (beside its budgets)."""

    def webhook_secret(self, tenant: str) -> str | None:
        item = self._table.get_item(Key={"pk": TENANT_PREFIX + tenant}, ConsistentRead=True).get("Item")
        return str(item["webhook_secret"]) if item and item.get("webhook_secret") else None

    def replace_webhook_secret(self, tenant: str, new_secret: str, now: float, overlap_seconds: float) -> str:
        """Rotate: the new secret signs every webhook from now on, and the one it replaces signs
        them too (a second signature) for `overlap_seconds`, while receivers switch."""
        self._table.update_item(
            Key={"pk": TENANT_PREFIX + tenant},
            UpdateExpression=(
                "SET previous_webhook_secret = if_not_exists(webhook_secret, :secret), previous_until = :until, "
                "webhook_secret = :secret, tenant = :tenant"
            ),
            ExpressionAttributeValues=to_dynamo(
                {":secret": new_secret, ":tenant": tenant, ":until": now + overlap_seconds}
            ),
        )
        return new_secret

    def ensure_webhook_secret(self, tenant: str, new_secret: str) -> str:
        """The tenant's webhook secret; `new_secret` becomes it if the tenant has none yet."""
        return self.webhook_signing_secrets(tenant, new_secret, now=0.0)[0]

    def webhook_signing_secrets(self, tenant: str, new_secret: str, now: float) -> list[str]:
        """The secrets that sign the tenant's webhooks now: its secret (`new_secret` becomes it if it
        has none yet, whether or not it has a record already: budgets live on the same item), then,
        within a rotation's overlap, the one it replaced. One atomic write: two callers at once get
        the same secret."""
        result = self._table.update_item(
            Key={"pk": TENANT_PREFIX + tenant},
            UpdateExpression="SET webhook_secret = if_not_exists(webhook_secret, :secret), tenant = :tenant",
            ExpressionAttributeValues={":secret": new_secret, ":tenant": tenant},
            ReturnValues="ALL_NEW",
        )
        item = result["Attributes"]
        signing = [str(item["webhook_secret"])]
        previous, until = item.get("previous_webhook_secret"), item.get("previous_until")
        if previous and until is not None and float(str(until)) > now and str(previous) != signing[0]:
            signing.append(str(previous))
        return signing
