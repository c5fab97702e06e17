"""API key authorizer (API Gateway TOKEN authorizer, answers cached per key): key -> tenant.

Imports only boto3 and the tenants module: it runs in front of every uncached request.
A missing, unknown or revoked key is refused with "Unauthorized" (API Gateway answers 401 with
the template's UNAUTHORIZED gateway response). The tenant goes to the API function in the
request context; the policy covers the whole API so one cached answer serves every route.
"""

from __future__ import annotations

import os
from typing import Any

from imagejobs.adapters.logs import make_logger
from imagejobs.adapters.tenants import Tenants, bearer_token, key_id

logger = make_logger("authorizer")
tenants = Tenants(os.environ["JOBS_TABLE"])
# Every call reads a key: the table resource is made at init, on unthrottled vCPUs, not in the
# first call at this function's share of one (imagejobs.edge.wiring.warm_now says why).
tenants.warm()


def _whole_api(method_arn: str) -> str:
    """arn:...:execute-api:region:account:api-id/stage/METHOD/path -> .../api-id/stage/*/*"""
    api, _, rest = method_arn.partition("/")
    stage = rest.split("/", 1)[0]
    return f"{api}/{stage}/*/*"


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    api_key = bearer_token(event.get("authorizationToken"))
    tenant = tenants.tenant_for_key(api_key) if api_key else None
    if tenant is None:
        # Only the key's public id is logged, never the key.
        logger.info("refused", extra={"key_id": key_id(api_key) if api_key else None})
        raise Exception("Unauthorized")  # the exact message API Gateway turns into its 401
    return {
        "principalId": tenant,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": _whole_api(event["methodArn"])}
            ],
        },
        "context": {"tenant": tenant, "key_id": key_id(api_key)},
    }
