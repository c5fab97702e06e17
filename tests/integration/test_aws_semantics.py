"""What AWS documents and moto alone would not show, checked on the offline stack, where every
function calls AWS as its own role with IAM enforced (imagejobs_local.iam).

Each test names the behaviour and its source; a failure here is a defect that would appear only
after `sam deploy`."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from imagejobs.adapters.aws import Objects, ResultStore
from imagejobs.domain.errors import ObjectMissing, ObjectUnreadable
from imagejobs.domain.models import ObjectRef
from imagejobs_local import iam
from imagejobs_local.deploy import load_template
from imagejobs_local.stack import REGION, LocalStack


def _put(stack: LocalStack, bucket: str, key: str, body: bytes = b"x") -> dict[str, Any]:
    return dict(stack.client("s3").put_object(Bucket=bucket, Key=key, Body=body))


# -- IAM, as each function's role ---------------------------------------------------------------
def test_a_function_may_only_do_what_its_role_allows(stack: LocalStack) -> None:
    """The status role has no S3 statement: a write to the results bucket is refused, as on AWS."""
    with iam.acting_as(stack.function_name("StatusFunction")):
        s3 = boto3.client("s3", region_name=REGION)
        with pytest.raises(ClientError) as refused:
            s3.put_object(Bucket=stack.outputs["ResultsBucketName"], Key="results/x/0.png", Body=b"x")
    assert refused.value.response["Error"]["Code"] == "AccessDenied"


@pytest.mark.parametrize(
    "function", ["ApiFunction", "SubmitFunction", "StatusFunction", "FinalizeFunction", "SweeperFunction"]
)
def test_every_function_that_frees_a_place_at_the_provider_may_wake_the_next_in_line(
    stack: LocalStack, function: str
) -> None:
    """A job that ends (or is done upstream) gives its place back and wakes the next waiting job with
    a submit-queue message (imagejobs.flows.admission.leave): status and finalize could not send
    there, so the wake failed and the waiting job stood until its own timer."""
    from imagejobs.adapters.aws import JobQueue

    with iam.acting_as(stack.function_name(function)):
        # delayed past the session: nothing consumes it while the tests run
        JobQueue(stack.outputs["SubmitQueueUrl"]).send("img_" + "0" * 24, delay_seconds=900, tenant="t")


def test_resources_are_checked_for_dynamodb_too(stack: LocalStack) -> None:
    """moto passes "*" as the resource of every non-S3/SQS call; the offline runtime names the
    table, so a role scoped to the jobs table cannot read another one."""
    other = "not-the-jobs-table"
    stack.client("dynamodb").create_table(
        TableName=other,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    with iam.acting_as(stack.function_name("AuthorizerFunction")):
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        dynamodb.get_item(TableName=stack.outputs["JobsTableName"], Key={"pk": {"S": "nothing"}})
        with pytest.raises(ClientError) as refused:
            dynamodb.get_item(TableName=other, Key={"pk": {"S": "nothing"}})
    assert refused.value.response["Error"]["Code"] == "AccessDeniedException"


def test_transact_write_items_is_authorised_item_by_item(stack: LocalStack) -> None:
    """AWS authorises each item of TransactWriteItems by its own action (UpdateItem, PutItem, ...),
    https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis-iam.html:
    the authorizer's role (GetItem only) may not write through a transaction."""
    with iam.acting_as(stack.function_name("AuthorizerFunction")):
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        with pytest.raises(ClientError) as refused:
            dynamodb.transact_write_items(
                TransactItems=[{"Put": {"TableName": stack.outputs["JobsTableName"], "Item": {"pk": {"S": "t"}}}}]
            )
    assert refused.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "dynamodb:PutItem" in refused.value.response["Error"]["Message"]


# -- S3: 403 for a missing key without s3:ListBucket ----------------------------------------------
def test_missing_key_is_403_without_list_bucket_and_404_with_it(stack: LocalStack) -> None:
    """https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html (Permissions): without
    s3:ListBucket a missing key answers 403 AccessDenied. The notify role may read results but not
    list them; the submit role may list the inbox, so the optional rules document reads as absent."""
    results, inbox = stack.outputs["ResultsBucketName"], stack.outputs["InboxBucketName"]
    with iam.acting_as(stack.function_name("NotifyFunction")), pytest.raises(ObjectUnreadable):
        Objects().read(ObjectRef(bucket=results, key="results/no-such-job/0.png"))
    with iam.acting_as(stack.function_name("SubmitFunction")):
        objects = Objects()
        with pytest.raises(ObjectMissing) as missing:
            objects.read(ObjectRef(bucket=inbox, key="uploads/deleted.png"))
        assert not isinstance(missing.value, ObjectUnreadable)
        assert objects.read_json(inbox, "config/no-rules-here.json") is None


def test_a_versioned_inbox_object_is_read_by_version(stack: LocalStack) -> None:
    """A GetObject or HeadObject with a versionId needs s3:GetObjectVersion
    (https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html): the submit role has it for
    the inbox; the notify role (plain GetObject on results) would not."""
    inbox = stack.outputs["InboxBucketName"]
    s3 = stack.client("s3")
    s3.put_bucket_versioning(Bucket=inbox, VersioningConfiguration={"Status": "Enabled"})
    try:
        first = _put(stack, inbox, "versioned/photo.png", b"first")["VersionId"]
        _put(stack, inbox, "versioned/photo.png", b"second")
        with iam.acting_as(stack.function_name("SubmitFunction")):
            objects = Objects()
            ref = ObjectRef(bucket=inbox, key="versioned/photo.png", version_id=first)
            assert objects.read(ref) == b"first"
            assert objects.head(ref).size == len(b"first")
        with iam.acting_as(stack.function_name("NotifyFunction")), pytest.raises(ObjectUnreadable):
            Objects().head(ref)
    finally:
        s3.put_bucket_versioning(Bucket=inbox, VersioningConfiguration={"Status": "Suspended"})


# -- presigned URLs -----------------------------------------------------------------------------
def test_result_urls_are_sigv4_regional_and_expire_when_they_say(stack: LocalStack) -> None:
    """botocore presigns S3 with SigV2 unless told; S3 refuses SigV2 for buckets made since June 2020
    (https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingAWSSDK.html#UsingAWSSDK-sig2-deprecation).
    Offline, as on S3, a SigV2 URL is refused and a SigV4 URL works until X-Amz-Expires."""
    bucket = stack.outputs["ResultsBucketName"]
    _put(stack, bucket, "results/sigv4/0.png", b"image bytes")
    with iam.acting_as(stack.function_name("ApiFunction")):
        url = ResultStore(bucket).presigned_url("results/sigv4/0.png", 60)
    parts = urlsplit(url)
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    assert parts.hostname == f"{bucket}.s3.{REGION}.amazonaws.com"
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert query["X-Amz-Expires"] == "60"
    assert "X-Amz-Security-Token" in query  # signed with the function's role session
    assert "AWSAccessKeyId" not in query

    assert _fetch(stack, url).content == b"image bytes"

    legacy = boto3.client("s3", region_name=REGION, config=Config(signature_version="s3")).generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "results/sigv4/0.png"}, ExpiresIn=60
    )
    assert "AWSAccessKeyId=" in legacy
    assert _fetch(stack, legacy).status_code == 400

    with iam.acting_as(stack.function_name("ApiFunction")):
        short = ResultStore(bucket).presigned_url("results/sigv4/0.png", 1)
    time.sleep(2.1)
    assert _fetch(stack, short).status_code == 403


def _fetch(stack: LocalStack, url: str) -> Any:
    """A plain GET of a presigned URL, as a browser sends it (no credentials of its own): through
    `requests`, which moto intercepts in-process."""
    import requests

    del stack
    return requests.get(url, timeout=30)


# -- the template's numbers add up --------------------------------------------------------------
def _number(template: dict[str, Any], value: Any) -> float:
    if isinstance(value, dict) and "Ref" in value:
        spec = template["Parameters"][value["Ref"]]
        return float(spec.get("MaxValue", spec.get("Default")))
    return float(value)


def test_time_budgets_fit_their_timeouts() -> None:
    """Each function's worst case at the largest ProviderTimeoutSeconds fits its Timeout; SQS
    visibility is at least the function timeout (Lambda refuses the mapping otherwise:
    https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html); API Gateway ends a
    request at 29 s (https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html)."""
    from imagejobs.adapters.aws import sfn_config
    from imagejobs.adapters.provider import CANCEL_TIMEOUT
    from imagejobs.domain import polling
    from imagejobs.domain.settings import Settings
    from imagejobs.flows import submit_queue
    from imagejobs.flows.steps import TIME_RESERVE_SECONDS

    template = load_template()
    resources = template["Resources"]
    provider_timeout = float(template["Parameters"]["ProviderTimeoutSeconds"]["MaxValue"])
    settings = Settings.model_validate(
        {
            "JOBS_TABLE": "t",
            "RESULTS_BUCKET": "b",
            "SUBMIT_QUEUE_URL": "q",
            "STATE_MACHINE_ARN": "a",
            "PROVIDER_BASE_URL": "https://p",
            "PROVIDER_SECRET_ID": "s",
            "PROVIDER_TIMEOUT_SECONDS": provider_timeout,
        }
    )

    def timeout(logical_id: str) -> float:
        return _number(template, resources[logical_id]["Properties"]["Timeout"])

    assert submit_queue.seconds_per_message(settings) <= timeout("SubmitFunction")
    hold_and_one_call = polling.HOLD_SECONDS + provider_timeout + TIME_RESERVE_SECONDS
    assert hold_and_one_call <= timeout("StatusFunction")
    # The API function runs as long as API Gateway waits for it (ApiTimeoutSeconds), which is 29 s
    # unless raised by a quota request: every route's budget must fit the smallest it can be.
    api_timeout = template["Parameters"]["ApiTimeoutSeconds"]
    assert resources["ApiFunction"]["Properties"]["Timeout"] == {"Ref": "ApiTimeoutSeconds"}
    assert api_timeout["Default"] == api_timeout["MinValue"] == 29
    # cancel = StopExecution (2 attempts of 1 s connect + 3 s read, ~1 s backoff) + the provider's cancel
    stop = sfn_config()
    stop_worst = stop.retries["total_max_attempts"] * (stop.connect_timeout + stop.read_timeout) + 1
    cancel_worst = (CANCEL_TIMEOUT.connect or 0) + (CANCEL_TIMEOUT.read or 0)
    assert stop_worst + cancel_worst + TIME_RESERVE_SECONDS <= api_timeout["MinValue"]
    for queue, function in (("SubmitQueue", "SubmitFunction"), ("NotifyQueue", "NotifyFunction")):
        # AWS's advice, beyond Lambda's own rule (visibility >= timeout): at least 6x the timeout
        # (Lambda developer guide, "Using Lambda with Amazon SQS").
        assert _number(template, resources[queue]["Properties"]["VisibilityTimeout"]) >= 6 * timeout(function)


def test_a_stuck_execution_times_out_so_its_alarm_can_fire() -> None:
    """A Standard execution runs for up to a year unless the definition sets TimeoutSeconds
    (https://docs.aws.amazon.com/step-functions/latest/dg/statemachine-structure.html): ours outlives
    the longest allowed job deadline, so only a loop that broke reaches it."""
    template = load_template()
    definition = json.loads((load_template.__globals__["ROOT"] / "statemachine/jobs.asl.json").read_text())
    longest_deadline = float(template["Parameters"]["JobDeadlineSeconds"]["MaxValue"])
    assert longest_deadline < definition["TimeoutSeconds"] <= longest_deadline + 4 * 3600
    assert "TimedOutExecutionsAlarm" in template["Resources"]


def test_each_function_logs_to_a_group_of_the_stack_with_a_retention() -> None:
    template = load_template()
    resources = template["Resources"]
    for resource in resources.values():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        group_id = resource["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        group = resources[group_id]["Properties"]
        assert group["RetentionInDays"] == {"Ref": "LogRetentionDays"}
        name = resource["Properties"]["FunctionName"]["Fn::Sub"]
        assert group["LogGroupName"]["Fn::Sub"] == f"/aws/lambda/{name}"


def test_alarm_topic_uses_a_key_cloudwatch_may_use() -> None:
    """CloudWatch cannot publish to a topic under alias/aws/sns
    (https://repost.aws/knowledge-center/cloudwatch-receive-sns-for-alarm-trigger)."""
    resources = load_template()["Resources"]
    assert resources["AlarmTopic"]["Properties"]["KmsMasterKeyId"] == {"Ref": "AlarmTopicKey"}
    statements = resources["AlarmTopicKey"]["Properties"]["KeyPolicy"]["Statement"]
    cloudwatch = [s for s in statements if s.get("Principal", {}).get("Service") == "cloudwatch.amazonaws.com"]
    assert cloudwatch and {"kms:Decrypt", "kms:GenerateDataKey*"} <= set(cloudwatch[0]["Action"])


def test_every_queue_a_service_sends_to_lets_that_service_send() -> None:
    """Issue #21.18: moto evaluates no queue policies, so a missing statement fails nothing offline;
    on AWS, S3 and EventBridge deliver to a queue only when its policy lets their service principal
    send (S3 user guide, "Configuring event notifications", and EventBridge user guide, "Amazon SQS
    permissions"), EventBridge's statement naming the rule (aws:SourceArn)."""
    template = load_template()
    resources = template["Resources"]
    statements: dict[str, list[dict[str, Any]]] = {}
    for resource in resources.values():
        if resource["Type"] == "AWS::SQS::QueuePolicy":
            for queue in resource["Properties"]["Queues"]:
                statements.setdefault(queue["Ref"], []).extend(resource["Properties"]["PolicyDocument"]["Statement"])

    def allows(queue: str, service: str, source_rule: str | None = None) -> bool:
        for statement in statements.get(queue, []):
            if (statement["Effect"], statement["Action"], statement["Principal"]) != (
                "Allow",
                "sqs:SendMessage",
                {"Service": service},
            ):
                continue
            if statement["Resource"] != {"Fn::GetAtt": [queue, "Arn"]}:
                continue
            source = (statement.get("Condition") or {}).get("ArnEquals", {}).get("aws:SourceArn")
            if source_rule is None or source == {"Fn::GetAtt": [source_rule, "Arn"]}:
                return True
        return False

    checked = 0
    for name, resource in resources.items():
        notifications = (resource["Properties"].get("NotificationConfiguration") or {}).get("QueueConfigurations", [])
        for notification in notifications:
            queue = notification["Queue"]["Fn::GetAtt"][0]
            assert allows(queue, "s3.amazonaws.com"), f"{name} notifies {queue}, whose policy does not let S3 send"
            checked += 1
        if resource["Type"] == "AWS::Events::Rule":
            for target in resource["Properties"].get("Targets", []):
                queue = target["Arn"]["Fn::GetAtt"][0] if isinstance(target["Arn"], dict) else None
                if queue and resources[queue]["Type"] == "AWS::SQS::Queue":
                    assert allows(queue, "events.amazonaws.com", name), f"{name} targets {queue} without a statement"
                    checked += 1
    assert checked >= 2  # the inbox's notification and the ImageJobRequested rule


# -- SQS ------------------------------------------------------------------------------------------
def test_a_standard_queue_delivers_quiet_tenants_first_as_fair_queues_do(stack: LocalStack) -> None:
    """SQS fair queues (SQS Developer Guide, "How Amazon SQS fair queues work"): with one tenant's
    backlog in flight, the messages of tenants with fewer in flight come first, a message without a
    MessageGroupId is a tenant of its own, and the backlog still drains. The submit queue's
    messages carry the tenant as MessageGroupId so that the light tenants' jobs reach the gate
    ahead of a flood's backlog on AWS; offline the same order holds."""
    sqs = stack.client("sqs")
    url = sqs.create_queue(QueueName="fair-queue-check")["QueueUrl"]
    try:
        for index in range(40):
            sqs.send_message(QueueUrl=url, MessageBody=f"flood {index}", MessageGroupId="flood")
        first = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60)["Messages"]
        assert [m["Body"] for m in first] == [f"flood {index}" for index in range(10)]  # in flight now
        sqs.send_message(QueueUrl=url, MessageBody="light 0", MessageGroupId="light")
        sqs.send_message(QueueUrl=url, MessageBody="no group")
        sqs.send_message(QueueUrl=url, MessageBody="light 1", MessageGroupId="light")

        after = [m["Body"] for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]]

        assert after[:3] == ["light 0", "no group", "light 1"]  # ahead of the flood's 30 waiting
        assert after[3:] == [f"flood {index}" for index in range(10, 17)]  # which still comes, in order
    finally:
        sqs.delete_queue(QueueUrl=url)
