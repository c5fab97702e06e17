"""Where the offline runtime reaches into moto's internals: every seam named here, checked once at
start (LocalStack.start) against the installed moto, so an upgrade that moves one fails at once,
naming the patch that no longer fits, instead of as a strange test failure later.

The patches themselves stay beside the piece of the runtime they serve (the IAM emulation in
iam.py, the job clock in clock_patches.py, ...): each is read with the code it changes. This
module is their table of contents and their version check."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

MOTO_VERSION = "5.2.5"  # requirements-dev.txt pins it exactly; the patches were checked against it


@dataclass(frozen=True)
class Seam:
    patch: str  # what our patch does there
    owner: str  # the module of ours that patches or reads it
    target: str  # "module:attribute.path" inside moto


SEAMS = [
    Seam(
        "authorize every call as its caller's role",
        "iam",
        "moto.core.authorization:ActionAuthenticatorMixin._authenticate_and_authorize_normal_action",
    ),
    Seam(
        "authorize S3 calls, presigned URLs and POSTs",
        "iam",
        "moto.core.authorization:ActionAuthenticatorMixin._authenticate_and_authorize_s3_action",
    ),
    Seam("count requests before auth starts", "iam", "moto.core.authorization:ActionAuthenticatorMixin.request_count"),
    Seam("enforce IAM from the first request", "iam", "moto.settings:INITIAL_NO_AUTH_ACTION_COUNT"),
    Seam("read parsed policy documents", "iam", "moto.iam.access_control:IAMPolicy.__init__"),
    Seam("skip moto's signature recheck", "iam", "moto.iam.access_control:IAMRequestBase.check_signature"),
    Seam("IAM requests per service", "iam", "moto.iam.access_control:IAMRequest"),
    Seam("S3 IAM requests", "iam", "moto.iam.access_control:S3IAMRequest"),
    Seam("the state machine's role for its SDK calls", "iam", "moto.stepfunctions.parser.asl.utils.boto_client:boto3"),
    Seam("resource ARNs of secrets", "iam", "moto.secretsmanager.models:secretsmanager_backends"),
    Seam("S3's 403 answers", "iam", "moto.s3.exceptions:S3AccessDeniedError"),
    Seam("bucket policies read with their TLS condition", "iam", "moto.s3.models:FakeBucket.get_permission"),
    Seam(
        "item-level rollback of transactions",
        "atomic_dynamodb",
        "moto.dynamodb.models:DynamoDBBackend.transact_write_items",
    ),
    Seam("no whole-table copies per transaction", "atomic_dynamodb", "moto.dynamodb.models:copy"),
    Seam("one DynamoDB action at a time", "atomic_dynamodb", "moto.dynamodb.responses:DynamoHandler.call_action"),
    Seam("tables, for the copy guard", "atomic_dynamodb", "moto.dynamodb.models.table:Table"),
    Seam(
        "Wait states on the job clock",
        "clock_patches",
        "moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function:WaitFunction._wait_interval",
    ),
    Seam(
        "Retry backoff on the job clock",
        "clock_patches",
        "moto.stepfunctions.parser.asl.component.common.retry.retrier_decl:time",
    ),
    Seam(
        "Task timeouts (a wait for a webhook) on the job clock",
        "clock_patches",
        "moto.stepfunctions.parser.asl.component.common.timeouts.timeout:Timeout._eval_body",
    ),
    Seam("run handlers in process", "lambdas", "moto.awslambda.models:LambdaFunction._invoke_lambda"),
    Seam("take the event source mappings over", "sqs_poller", "moto.sqs.models:sqs_backends"),
    Seam("deliver standard queues as fair queues do", "sqs_poller", "moto.sqs.models:Queue.messages"),
    Seam("resolve intrinsics as moto's CloudFormation does", "deploy", "moto.cloudformation.parsing:clean_json"),
    Seam("the deployed stack's resource map", "deploy", "moto.cloudformation.models:cloudformation_backends"),
    Seam("moto's server for make serve", "stack", "moto.server:ThreadedMotoServer"),
    Seam("moto's user config", "stack", "moto.core.config:default_user_config"),
]


def missing(seams: list[Seam] = SEAMS) -> list[Seam]:
    """The seams the installed moto no longer has."""
    gone = []
    for seam in seams:
        module_name, _, path = seam.target.partition(":")
        try:
            found: object = importlib.import_module(module_name)
            for part in path.split("."):
                found = getattr(found, part)
        except (ImportError, AttributeError):
            gone.append(seam)
    return gone


def check(seams: list[Seam] = SEAMS) -> None:
    import moto

    gone = missing(seams)
    if gone:
        names = "; ".join(f"{seam.owner}: {seam.patch} ({seam.target})" for seam in gone)
        raise RuntimeError(f"moto {moto.__version__} no longer has what these patches need: {names}")
    if moto.__version__ != MOTO_VERSION:
        raise RuntimeError(
            f"the offline runtime's patches were checked against moto {MOTO_VERSION}; moto {moto.__version__} is "
            f"installed. Every seam still resolves ({len(seams)} in moto_seam.SEAMS): run make test, then set "
            "MOTO_VERSION and the pin in requirements-dev.txt together"
        )
