"""IAM enforced offline: every function calls AWS as its own role, and moto checks each call.

On Lambda a function's SDK calls are signed with its execution role's session credentials, and
IAM refuses whatever the role's policies do not allow. moto checks IAM only once authentication is
switched on (`INITIAL_NO_AUTH_ACTION_COUNT`; moto's docs: "IAM-like Access Control",
https://docs.getmoto.org/en/latest/docs/iam.html), and then it knows only the identities it made. So,
after the deploy (which runs unauthenticated, as CloudFormation's own service role would):

- an admin user (Action *, Resource *) is made for the test code, the CLI and the runtime itself
  (queue pollers, the gateway, deploys): its keys replace the process's "testing" credentials;
- each function's role is assumed (sts:AssumeRole, as Lambda does) and every boto3 client made
  while that function runs (its cold start or an invocation, on that thread) is signed with the
  role's session: a permission the template forgets fails offline as it would on AWS;
- Step Functions' task calls (moto signs them "ak"/"sk") are signed with the state machine's role.

Where moto's evaluation differs from AWS's, this module closes the gap (all in one place):
- moto checks resource ARNs only for S3 and SQS and passes "*" for every other service, which
  matches no statement that names a resource: DynamoDB, Step Functions, Secrets Manager,
  EventBridge and Lambda requests get their real resource ARN here;
- moto authorises TransactWriteItems / TransactGetItems as actions of their own; AWS authorises
  each item by its own action (PutItem, UpdateItem, DeleteItem, ConditionCheckItem, GetItem) on its
  table (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis-iam.html);
- moto names the IAM action after the API operation; Lambda's Invoke is lambda:InvokeFunction in
  IAM (https://docs.aws.amazon.com/service-authorization/latest/reference/list_awslambda.html);
- a GetObject or HeadObject of a missing key answers 403 AccessDenied, not 404, when the caller
  lacks s3:ListBucket on the bucket (https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html,
  "Permissions"); moto always answers 404;
- HeadObject with a versionId needs s3:GetObjectVersion, as GetObject with one does
  (https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html); moto asks for GetObject.
- moto cannot authorise a presigned (query-string) request at all once IAM is on (it reads the
  Authorization header): such a request is authorised as the identity that signed it, until its
  X-Amz-Expires has passed; a SigV2 presigned URL is refused, as S3 refuses SigV2 for buckets made
  since June 2020;
- a presigned POST (browser form upload) is checked as S3 checks it: the policy's expiry and every
  condition (content-length-range included), then the signer's PutObject on the key;
- moto recomputes each SigV4 signature and gets some REST paths wrong (Lambda's
  /2015-03-31/event-source-mappings/ answers SignatureDoesNotMatch to a correct botocore
  signature): the signature is not re-checked; the caller is still identified by its access key
  and, for a role session, its session token.
- moto answers a refusal in XML with HTTP 403 whatever the protocol; DynamoDB, Step Functions,
  Secrets Manager and EventBridge answer AccessDeniedException in JSON (HTTP 400), as here;
- a role made by moto's CloudFormation keeps its inline policies as parsed documents, which
  moto's evaluator cannot read (KeyError 'policy_document'): they are read as documents here.
What stays different: moto does not evaluate resource policies (bucket and queue policies), policy
conditions, permission boundaries or SCPs; the admin identity is allowed everything.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import boto3

from imagejobs_local import moto_seam

ADMIN_USER = "imagejobs-local-admin"


@dataclass(frozen=True)
class Keys:
    access_key_id: str
    secret_access_key: str
    session_token: str | None = None

    def client_kwargs(self) -> dict[str, str | None]:
        return {
            "aws_access_key_id": self.access_key_id,
            "aws_secret_access_key": self.secret_access_key,
            "aws_session_token": self.session_token,
        }


_acting = threading.local()  # .function, .keys: the function running on this thread, its role session
_function_keys: dict[str, Keys] = {}
_state_machine: Keys | None = None  # the (one) deployed state machine's role session
_installed = False


# -- who is calling ----------------------------------------------------------------------------
@contextmanager
def acting_as(function_name: str) -> Iterator[None]:
    """The function runs on this thread inside the block: the clients made there are signed as
    its role, and `current_function()` names it (for what else a process must keep per function)."""
    previous = getattr(_acting, "function", None), getattr(_acting, "keys", None)
    _acting.function, _acting.keys = function_name, _function_keys.get(function_name)
    try:
        yield
    finally:
        _acting.function, _acting.keys = previous


def current_function() -> str | None:
    return getattr(_acting, "function", None)


def _create_client_as_caller(original: Callable[..., Any]) -> Callable[..., Any]:
    def create_client(self: Any, service_name: str, *args: Any, **kwargs: Any) -> Any:
        keys: Keys | None = getattr(_acting, "keys", None)
        if keys is not None and kwargs.get("aws_access_key_id") is None and len(args) < 6:
            kwargs.update(keys.client_kwargs())
        return original(self, service_name, *args, **kwargs)

    return create_client


class _Boto3AsStateMachine:
    """Stands in for `boto3` inside moto's Step Functions task code, which signs with "ak"/"sk"."""

    def client(self, *args: Any, **kwargs: Any) -> Any:
        if _state_machine is not None:
            kwargs.update(_state_machine.client_kwargs())
        return boto3.client(*args, **kwargs)


# -- the resource each request names (moto passes "*" but for S3 and SQS) -----------------------
# Services whose errors AWS sends as JSON (awsJson protocols): AccessDeniedException, HTTP 400.
_JSON_SERVICES = {"dynamodb", "stepfunctions", "secretsmanager", "events", "logs"}
_DYNAMODB_ITEM_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}


def _requested(response: Any, resource: str) -> list[tuple[str, str]]:
    """(action, resource ARN) pairs that AWS would authorise for this request."""
    action = response._get_action()
    service = response.service_name
    region, account = response.region, response.current_account
    body = response.body
    try:
        body = json.loads(body or "{}") if isinstance(body, str | bytes) else body
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}

    def table(name: str, index: str | None = None) -> str:
        arn = name if name.startswith("arn:") else f"arn:aws:dynamodb:{region}:{account}:table/{name}"
        return f"{arn}/index/{index}" if index else arn

    if service == "dynamodb":
        if action == "TransactWriteItems":
            return [
                (_DYNAMODB_ITEM_ACTIONS[kind], table(spec["TableName"]))
                for item in body.get("TransactItems", [])
                for kind, spec in item.items()
            ]
        if action == "TransactGetItems":
            return [("GetItem", table(item["Get"]["TableName"])) for item in body.get("TransactItems", [])]
        if action in ("BatchWriteItem", "BatchGetItem"):
            return [(action, table(name)) for name in body.get("RequestItems", {})]
        if "TableName" in body:
            return [(action, table(body["TableName"], body.get("IndexName")))]
    elif service == "stepfunctions":
        arn = body.get("executionArn") or body.get("stateMachineArn")
        if arn:
            return [(action, arn)]
    elif service == "secretsmanager" and "SecretId" in body:
        return [(action, _secret_arn(body["SecretId"], account, region))]
    elif service == "events" and action == "PutEvents":
        buses = {entry.get("EventBusName") or "default" for entry in body.get("Entries", [])}
        return [
            (action, bus if bus.startswith("arn:") else f"arn:aws:events:{region}:{account}:event-bus/{bus}")
            for bus in sorted(buses)
        ]
    elif service == "awslambda" and "/functions/" in response.path:
        name = unquote(response.path.split("/functions/", 1)[1].split("/", 1)[0])
        name = name.split(":function:", 1)[1].split(":")[0] if name.startswith("arn:") else name
        iam_action = {"Invoke": "InvokeFunction", "InvokeAsync": "InvokeFunction"}.get(action, action)
        return [(iam_action, f"arn:aws:lambda:{region}:{account}:function:{name}")]
    return [(action, resource)]


def _secret_arn(secret_id: str, account: str, region: str) -> str:
    if secret_id.startswith("arn:"):
        return secret_id
    from moto.secretsmanager.models import secretsmanager_backends

    secrets = secretsmanager_backends[account][region].secrets
    return str(secrets[secret_id].arn) if secret_id in secrets else secret_id


def _authorize_normal_action(self: Any, resource: str = "*") -> None:
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.iam.access_control import IAMRequest

    if ActionAuthenticatorMixin.request_count < settings.INITIAL_NO_AUTH_ACTION_COUNT:
        ActionAuthenticatorMixin.request_count += 1
        return
    from moto.core.exceptions import AccessDeniedError, JsonRESTError

    for action, arn in _requested(self, resource):

        def request(_action: str = action, **kwargs: Any) -> Any:
            return IAMRequest(**{**kwargs, "action": _action})

        try:
            self._authenticate_and_authorize_action(request, arn)
        except AccessDeniedError as denied:
            if self.service_name in _JSON_SERVICES:  # AWS answers these in JSON, as a 400
                raise JsonRESTError("AccessDeniedException", denied.message) from denied
            raise


def _presigned_as_headers(self: Any) -> dict[str, str] | None:
    """A presigned (query-string) request is authorised as the identity that signed it, with that
    identity's permissions, until X-Amz-Date + X-Amz-Expires; SigV2 query strings are refused as
    buckets made since June 2020 refuse them. https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html
    https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingAWSSDK.html#UsingAWSSDK-sig2-deprecation"""
    import datetime

    from moto.s3.exceptions import S3AccessDeniedError, S3ClientError

    query = {name: values[0] for name, values in (self.querystring or {}).items() if values}
    if "AWSAccessKeyId" in query and "Signature" in query:
        raise S3ClientError(
            "InvalidRequest",
            "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.",
        )
    if "X-Amz-Credential" not in query:
        raise S3AccessDeniedError()  # anonymous, and our buckets are private
    signed_at = datetime.datetime.strptime(query.get("X-Amz-Date", ""), "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.UTC)
    expires = datetime.timedelta(seconds=int(query.get("X-Amz-Expires", "0")))
    if datetime.datetime.now(datetime.UTC) > signed_at + expires:
        raise S3ClientError("AccessDenied", "Request has expired")
    return _as_signed_headers(
        self, query["X-Amz-Credential"], query.get("X-Amz-Signature", ""), query.get("X-Amz-Security-Token")
    )


def _as_signed_headers(self: Any, credential: str, signature: str, token: str | None) -> dict[str, str]:
    """The request's headers with credentials from its query string or form, shaped as the
    Authorization header moto reads the caller from."""
    headers = dict(self.headers)
    headers["Authorization"] = f"AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders=host, Signature={signature}"
    if token is not None:
        headers["X-Amz-Security-Token"] = token
    return headers


def _form_post_as_headers(self: Any, bucket: str) -> tuple[dict[str, str], str]:
    """A browser-form POST (a presigned POST): S3 checks its signed policy (expiry and every
    condition, content-length-range included) and authorises the upload as the policy's signer;
    moto checks none of it. https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-HTTPPOSTConstructPolicy.html"""
    import base64
    import datetime

    from moto.s3.exceptions import S3AccessDeniedError, S3ClientError

    form = {name: values[0] for name, values in (self.querystring or {}).items() if values}
    fields = {name.lower(): value for name, value in form.items()}
    if "x-amz-credential" not in fields:
        raise S3AccessDeniedError()
    try:
        policy = json.loads(base64.b64decode(fields["policy"]))
        expires = datetime.datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00"))
    except (ValueError, KeyError, TypeError) as exc:
        raise S3ClientError("InvalidPolicyDocument", "Invalid Policy: Invalid JSON.") from exc
    if datetime.datetime.now(datetime.UTC) > expires:
        raise S3ClientError("AccessDenied", "Invalid according to Policy: Policy expired.")
    size = len(self.body or b"")
    values = {**fields, "bucket": bucket}
    for condition in policy.get("conditions", []):
        if isinstance(condition, dict):
            checks = [("eq", f"${name}", value) for name, value in condition.items()]
        elif condition and condition[0] == "content-length-range":
            low, high = int(condition[1]), int(condition[2])
            if size > high:
                raise S3ClientError("EntityTooLarge", "Your proposed upload exceeds the maximum allowed size")
            if size < low:
                raise S3ClientError("EntityTooSmall", "Your proposed upload is smaller than the minimum allowed size")
            continue
        else:
            checks = [tuple(condition)]
        for operator, name, expected in checks:
            actual = values.get(str(name).lstrip("$").lower(), "")
            if (operator == "eq" and actual != expected) or (
                operator == "starts-with" and not actual.startswith(expected)
            ):
                raise S3ClientError(
                    "AccessDenied", f"Invalid according to Policy: Policy Condition failed: {json.dumps(condition)}"
                )
    headers = _as_signed_headers(
        self, fields["x-amz-credential"], fields.get("x-amz-signature", ""), fields.get("x-amz-security-token")
    )
    return headers, form.get("key", "")


def _keys_to_delete(body: Any) -> list[str]:
    """The keys a DeleteObjects request names (<Delete><Object><Key>, in S3's namespace or none)."""
    from xml.etree import ElementTree

    try:
        root = ElementTree.fromstring(body or b"")
    except ElementTree.ParseError:
        return [""]  # unreadable: authorized as a key of the bucket, which moto then refuses
    keys = [element.text or "" for element in root.iter() if element.tag.rsplit("}", 1)[-1] == "Key"]
    return keys or [""]


def _authorize_s3_action(original: Callable[..., None]) -> Callable[..., None]:
    def authorize(self: Any, bucket_name: str | None = None, key_name: str | None = None) -> None:
        from moto import settings
        from moto.core.authorization import ActionAuthenticatorMixin
        from moto.iam.access_control import S3IAMRequest

        enforcing = ActionAuthenticatorMixin.request_count >= settings.INITIAL_NO_AUTH_ACTION_COUNT
        versioned = "versionId" in (self.querystring or {})
        if enforcing and key_name and self.method == "HEAD" and versioned:
            self.data["Action"] = "GetObjectVersion"
        if enforcing and "Authorization" not in self.headers:
            if self.method == "POST" and "policy" in (self.querystring or {}) and not key_name:
                self.headers, key_name = _form_post_as_headers(self, bucket_name or "")
            else:
                self.headers = _presigned_as_headers(self)
        if (
            enforcing
            and self.method == "POST"
            and "delete" in (self.querystring or {})
            and bucket_name
            and not key_name
        ):
            # AWS authorizes DeleteObjects as s3:DeleteObject on each key it names (S3 API
            # reference, DeleteObjects: "you must have s3:DeleteObject permission"); moto asks for
            # it on the bucket ARN, which a role granted DeleteObject on bucket/* never has, so
            # every batch delete was refused offline. Each key is authorized as AWS does.
            for key in _keys_to_delete(self.body):
                original(self, bucket_name=bucket_name, key_name=key)
            return
        original(self, bucket_name=bucket_name, key_name=key_name)
        if not (enforcing and bucket_name and key_name and self.method in ("GET", "HEAD")):
            return
        if self.data.get("Action") not in ("GetObject", "GetObjectVersion"):
            return
        version = (self.querystring.get("versionId") or [None])[0] if versioned else None
        try:
            found = self.backend.get_object(bucket_name, key_name, version_id=version)
        except Exception:
            found = None
        if found is not None:
            return
        # Missing: AWS says 404 only to a caller who may list the bucket; to others, 403.
        self.data["Action"] = "ListBucket"
        try:
            self._authenticate_and_authorize_action(S3IAMRequest, f"arn:aws:s3:::{bucket_name}")
        finally:
            self.data["Action"] = "GetObject" if not version else "GetObjectVersion"

    return authorize


def _read_parsed_documents(original: Callable[..., None]) -> Callable[..., None]:
    def init(self: Any, policy: Any) -> None:
        if isinstance(policy, dict) and "policy_document" not in policy and "Statement" in policy:
            policy = json.dumps(policy)
        original(self, policy)

    return init


# The buckets' policies deny every request without TLS (aws:SecureTransport "false"). moto checks a
# bucket policy only inside DeleteObjects (each key), and evaluates no Condition: that deny then
# matched every key, so every cleanup of the stack's objects was silently refused offline (the
# per-key errors of a quiet DeleteObjects). Every call the stack makes on AWS is TLS (boto3's
# endpoints are https), so offline the TLS condition reads true; other statements stay as moto
# reads them.
def _tls_only_deny(statement: Any) -> bool:
    condition = statement.get("Condition") if isinstance(statement, dict) else None
    return (
        isinstance(condition, dict)
        and statement.get("Effect") == "Deny"
        and condition == {"Bool": {"aws:SecureTransport": "false"}}
    )


def _bucket_permission(self: Any, action: str, resource: str) -> Any:
    from moto.iam.access_control import IAMPolicy, PermissionResult

    if self.policy is None:
        return PermissionResult.NEUTRAL
    document = json.loads(self.policy)
    statements = document.get("Statement", [])
    statements = [statements] if isinstance(statements, dict) else statements
    kept = [statement for statement in statements if not _tls_only_deny(statement)]
    if not kept:
        return PermissionResult.NEUTRAL
    return IAMPolicy(json.dumps({**document, "Statement": kept})).is_action_permitted(action, resource)


def install() -> None:
    """Patch moto and botocore once per process (idempotent)."""
    global _installed
    if _installed:
        return
    moto_seam.check()  # every internal of moto patched here, and the version they were checked at
    import botocore.session
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.iam.access_control import IAMPolicy, IAMRequestBase
    from moto.stepfunctions.parser.asl.utils import boto_client

    botocore.session.Session.create_client = _create_client_as_caller(  # type: ignore[method-assign]
        botocore.session.Session.create_client
    )
    ActionAuthenticatorMixin._authenticate_and_authorize_normal_action = _authorize_normal_action  # type: ignore[method-assign]
    ActionAuthenticatorMixin._authenticate_and_authorize_s3_action = _authorize_s3_action(  # type: ignore[method-assign]
        ActionAuthenticatorMixin._authenticate_and_authorize_s3_action
    )
    boto_client.boto3 = _Boto3AsStateMachine()  # type: ignore[assignment]
    IAMRequestBase.check_signature = lambda self: None  # type: ignore[method-assign]
    IAMPolicy.__init__ = _read_parsed_documents(IAMPolicy.__init__)  # type: ignore[method-assign]
    from moto.s3.models import FakeBucket

    FakeBucket.get_permission = _bucket_permission  # type: ignore[method-assign]
    _installed = True


# -- switching it on ---------------------------------------------------------------------------
def _set_enforcing(on: bool) -> None:
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin

    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0 if on else float("inf")
    ActionAuthenticatorMixin.request_count = 0


def enforcing() -> bool:
    from moto import settings

    return bool(settings.INITIAL_NO_AUTH_ACTION_COUNT == 0)


@contextmanager
def unenforced() -> Iterator[None]:
    """Setup steps that AWS would run as another principal (CloudFormation, Lambda's own
    AssumeRole): IAM is not checked inside the block."""
    was = enforcing()
    _set_enforcing(False)
    try:
        yield
    finally:
        _set_enforcing(was)


def admin_keys(region: str) -> Keys:
    """An IAM user allowed everything (the operator's and the tests' identity); made unenforced."""
    iam = boto3.client("iam", region_name=region)
    try:
        iam.create_user(UserName=ADMIN_USER)
        iam.put_user_policy(
            UserName=ADMIN_USER,
            PolicyName="everything",
            PolicyDocument=json.dumps(
                {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
            ),
        )
    except iam.exceptions.EntityAlreadyExistsException:
        pass
    made = iam.create_access_key(UserName=ADMIN_USER)["AccessKey"]
    return Keys(made["AccessKeyId"], made["SecretAccessKey"])


def assume(role_arn: str, session_name: str, region: str) -> Keys:
    """The role's session credentials, as Lambda or Step Functions gets them. (An hour, the roles'
    MaxSessionDuration; moto does not expire sessions, so a long run keeps them.)"""
    answer = boto3.client("sts", region_name=region).assume_role(
        RoleArn=role_arn, RoleSessionName=session_name[:64], DurationSeconds=3600
    )
    credentials = answer["Credentials"]
    return Keys(credentials["AccessKeyId"], credentials["SecretAccessKey"], credentials["SessionToken"])


def enforce(region: str, function_roles: dict[str, str], state_machine_role: str | None) -> Keys:
    """Make the identities, then switch enforcement on. Returns the admin keys (the caller puts
    them in the environment for everything that is not a function)."""
    global _state_machine
    install()
    with unenforced():
        admin = admin_keys(region)
        for function_name, role_arn in function_roles.items():
            _function_keys[function_name] = assume(role_arn, function_name, region)
        if state_machine_role:
            _state_machine = assume(state_machine_role, "states", region)
    _set_enforcing(True)
    return admin


def relax() -> None:
    """Back to moto's default (no checks), e.g. when the stack stops."""
    global _state_machine
    _set_enforcing(False)
    _state_machine = None
