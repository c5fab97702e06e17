"""Adapters over boto3 for SQS, Step Functions and S3. Clients are injected or built lazily."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any, cast

import boto3
from botocore.exceptions import ClientError

from imagejobs.domain.errors import EventNotPublished, ObjectMissing, ObjectUnreadable, SourceChanged
from imagejobs.domain.models import ObjectInfo, ObjectRef, Output

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_stepfunctions import SFNClient
else:
    S3Client = SQSClient = SFNClient = EventBridgeClient = Any

SINGLE_PUT_BYTES = 8 * 1024 * 1024  # s3transfer's default multipart threshold and part size


class _LazyClient[C]:
    """The boto3 client is made on first use: a cold start pays only for the clients that the
    invocation needs (making one costs tens of milliseconds)."""

    _service_name: str
    _made: C | None = None

    def _config(self) -> Any:
        return None

    def warm(self) -> None:
        """Make the client now (wiring.warm: at init, for the clients every invocation uses)."""
        self._client  # noqa: B018  (the property makes it)

    @property
    def _client(self) -> C:
        if self._made is None:
            # (the service's name is a class attribute, not a literal the stubs' overloads can see)
            self._made = cast(C, boto3.client(cast(Any, self._service_name), config=self._config()))
        return self._made


def s3_config() -> Any:
    """SigV4 against the regional endpoint: botocore presigns with SigV2 unless told, and S3 refuses
    SigV2 for buckets made since June 24, 2020
    (https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingAWSSDK.html#UsingAWSSDK-sig2-deprecation)."""
    from botocore.config import Config

    return Config(
        signature_version="s3v4", s3={"addressing_style": "virtual", "us_east_1_regional_endpoint": "regional"}
    )


class JobQueue(_LazyClient[SQSClient]):
    """An SQS queue of job ids (the submit queue, the notify queue)."""

    _service_name = "sqs"

    def __init__(self, queue_url: str, dead_letter_url: str | None = None, client: SQSClient | None = None) -> None:
        self._url = queue_url
        self._dead_letter_url = dead_letter_url
        self._made = client

    def send(self, job_id: str, delay_seconds: int = 0, tenant: str | None = None) -> None:
        """`tenant` is the message's MessageGroupId: on a standard queue that makes it a fair queue
        (SQS delivers a quiet tenant's messages ahead of a noisy tenant's backlog: the SQS Developer
        Guide, "Amazon SQS fair queues"); S3 and EventBridge send theirs without one, and each such
        message counts as a tenant of its own."""
        body, delay = json.dumps({"job_id": job_id}), max(0, min(delay_seconds, 900))
        if tenant:
            self._client.send_message(QueueUrl=self._url, MessageBody=body, DelaySeconds=delay, MessageGroupId=tenant)
        else:
            self._client.send_message(QueueUrl=self._url, MessageBody=body, DelaySeconds=delay)

    def retry_after(self, receipt_handle: str, seconds: int) -> None:
        """Make a received message come back in `seconds` (SQS caps visibility at 12 hours)."""
        self._client.change_message_visibility(
            QueueUrl=self._url, ReceiptHandle=receipt_handle, VisibilityTimeout=max(0, min(seconds, 43_200))
        )

    def dead_letter(self, body: str, reason: str) -> None:
        """Park a message we can never process in the dead-letter queue, with the reason beside it."""
        if not self._dead_letter_url:
            raise RuntimeError("no dead-letter queue configured")
        self._client.send_message(
            QueueUrl=self._dead_letter_url,
            MessageBody=body,
            MessageAttributes={"reason": {"DataType": "String", "StringValue": reason[:256]}},
        )


def sfn_config() -> Any:
    """Short timeouts and two attempts: botocore's defaults (60 s connect and read, legacy retries)
    could hold the API function's cancel past API Gateway's 29 s; a failed start is retried by
    the submit queue's redelivery anyway."""
    from botocore.config import Config

    return Config(connect_timeout=1, read_timeout=3, retries={"mode": "standard", "total_max_attempts": 2})


class Executions(_LazyClient[SFNClient]):
    _service_name = "stepfunctions"
    _config = staticmethod(sfn_config)

    def __init__(self, state_machine_arn: str, client: SFNClient | None = None) -> None:
        self._arn = state_machine_arn
        self._made = client

    def start(self, name: str, payload: dict[str, Any]) -> str:
        """Start the poll loop for a job. The name is the job id, so Step Functions itself refuses a
        second loop for the same job: an existing execution is returned, not duplicated."""
        try:
            result = self._client.start_execution(
                stateMachineArn=self._arn, name=name, input=json.dumps(payload, sort_keys=True)
            )
            return result["executionArn"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ExecutionAlreadyExists":
                raise
            return self.arn_for(name)

    def stop(self, execution_arn: str, cause: str) -> bool:
        """Stop a running poll loop (one that already ended is left as it is). Best effort: a loop
        that cannot be stopped ends by itself at its next step, which finds the job final."""
        for attempt in range(3):
            try:
                self._client.stop_execution(executionArn=execution_arn, error="JobCancelled", cause=cause[:256])
                return True
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("ExecutionDoesNotExist", "InvalidArn"):
                    return False
            except Exception:  # offline, moto can raise its own errors unwrapped while a loop starts
                pass
            time.sleep(0.1 * (attempt + 1))
        return False

    def status(self, execution_arn: str) -> str | None:
        """RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED; None when there is no such execution."""
        try:
            return self._client.describe_execution(executionArn=execution_arn)["status"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("ExecutionDoesNotExist", "InvalidArn"):
                return None
            raise

    def complete(self, task_token: str, output: dict[str, Any]) -> bool:
        """End a wait (a waitForTaskToken task) with its output. False when that wait has ended
        already: timed out, or ended by another (SendTaskSuccess answers TaskTimedOut, or
        TaskDoesNotExist / InvalidToken for a token it no longer knows: its API reference)."""
        try:
            self._client.send_task_success(taskToken=task_token, output=json.dumps(output))
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("TaskTimedOut", "TaskDoesNotExist", "InvalidToken"):
                return False
            raise

    def arn_for(self, name: str) -> str:
        prefix, _, machine = self._arn.rpartition(":stateMachine:")
        return f"{prefix}:execution:{machine}:{name}"


class _ChunkReader:
    """A read()-able view of a chunk iterator, so upload_fileobj streams without buffering it all."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""
        self.bytes_read = 0

    def push_back(self, data: bytes) -> None:
        """Put read bytes back in front (they count as unread again)."""
        self._buffer = data + self._buffer
        self.bytes_read -= len(data)

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            try:
                self._buffer += next(self._chunks)
            except StopIteration:
                break
        if size < 0:
            data, self._buffer = self._buffer, b""
        else:
            data, self._buffer = self._buffer[:size], self._buffer[size:]
        self.bytes_read += len(data)
        return data


def _missing_or(exc: ClientError, ref: ObjectRef) -> Exception:
    """S3's answer for an object we cannot have, as a domain error; anything else as it came."""
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    where = f"s3://{ref.bucket}/{ref.key}" + (f" (version {ref.version_id})" if ref.version_id else "")
    if error.get("Code") in ("404", "NoSuchKey", "NotFound", "NoSuchVersion"):
        return ObjectMissing(f"{where} no longer exists")
    if error.get("Code") in ("412", "PreconditionFailed") or status == 412:
        return SourceChanged(f"{where} was replaced after it was checked; the checked image is no longer there")
    if error.get("Code") in ("403", "AccessDenied", "Forbidden") or status == 403:
        return ObjectUnreadable(
            f"{where} cannot be read: S3 answered 403 (it does so for a missing key when the reader may "
            "not list the bucket, and for a key the reader may not read)"
        )
    return exc


class Objects(_LazyClient[S3Client]):
    """Reads S3 objects by reference: edit inputs, uploads and the inbox rules document."""

    _service_name = "s3"
    _config = staticmethod(s3_config)

    def __init__(self, client: S3Client | None = None) -> None:
        self._made = client

    def _version(self, ref: ObjectRef) -> dict[str, Any]:
        """Which object a reference means: its version, and, when it was checked, its ETag. A read
        with IfMatch gets exactly the bytes that were checked or a 412 (S3 API reference,
        GetObject/HeadObject If-Match), however often the key was written since: an upload
        ticket used again, or an inbox key overwritten while its job waited."""
        pinned: dict[str, Any] = {"VersionId": ref.version_id} if ref.version_id else {}
        if ref.etag:
            pinned["IfMatch"] = f'"{ref.etag}"'
        return pinned

    def head(self, ref: ObjectRef) -> ObjectInfo:
        try:
            answer = self._client.head_object(Bucket=ref.bucket, Key=ref.key, **self._version(ref))
        except ClientError as exc:
            raise _missing_or(exc, ref) from exc
        return ObjectInfo(
            size=int(answer.get("ContentLength", 0)),
            etag=str(answer.get("ETag", "")).strip('"') or None,
            version_id=answer.get("VersionId"),
            content_type=answer.get("ContentType"),
            metadata={k.lower(): v for k, v in answer.get("Metadata", {}).items()},
        )

    def read(self, ref: ObjectRef) -> bytes:
        try:
            answer = self._client.get_object(Bucket=ref.bucket, Key=ref.key, **self._version(ref))
        except ClientError as exc:
            raise _missing_or(exc, ref) from exc
        return answer["Body"].read()

    def read_json(self, bucket: str, key: str) -> Any | None:
        """A JSON document, or None when there is none (a 403 is not "none": it is raised)."""
        try:
            return json.loads(self.read(ObjectRef(bucket=bucket, key=key)))
        except ObjectUnreadable:
            raise
        except ObjectMissing:
            return None


class EventBus(_LazyClient[EventBridgeClient]):
    """Publishes our job events (source "imagejobs") on the configured bus."""

    SOURCE = "imagejobs"

    _service_name = "events"

    def __init__(self, bus_name: str, client: EventBridgeClient | None = None) -> None:
        self._bus = bus_name
        self._made = client

    def put(self, detail_type: str, detail: dict[str, Any], resources: list[str] | None = None) -> None:
        answer = self._client.put_events(
            Entries=[
                {
                    "EventBusName": self._bus,
                    "Source": self.SOURCE,
                    "DetailType": detail_type,
                    "Detail": json.dumps(detail),
                    "Resources": resources or [],
                }
            ]
        )
        if answer.get("FailedEntryCount"):
            entry = answer["Entries"][0]
            raise EventNotPublished(f"{entry.get('ErrorCode')}: {entry.get('ErrorMessage')}")


class ResultStore(_LazyClient[S3Client]):
    _service_name = "s3"
    _config = staticmethod(s3_config)

    def __init__(self, bucket: str, client: S3Client | None = None) -> None:
        self.bucket = bucket
        self._made = client

    def put_stream(self, key: str, chunks: Iterator[bytes], content_type: str, metadata: dict[str, str]) -> Output:
        """Store a stream without holding it whole: an output that fits in one part (the common
        case, a few MB) is one PutObject; a larger one streams as a multipart upload. (Every
        upload through s3transfer starts its thread pool: most of finalize's time for small files.)"""
        reader = _ChunkReader(chunks)
        head = reader.read(SINGLE_PUT_BYTES + 1)
        if len(head) <= SINGLE_PUT_BYTES:
            self._client.put_object(Bucket=self.bucket, Key=key, Body=head, ContentType=content_type, Metadata=metadata)
            return Output(bucket=self.bucket, key=key, content_type=content_type, bytes=len(head))
        reader.push_back(head)
        body = cast(IO[bytes], reader)  # a readable stream of the chunks, as upload_fileobj takes
        self._client.upload_fileobj(
            body, self.bucket, key, ExtraArgs={"ContentType": content_type, "Metadata": metadata}
        )
        return Output(bucket=self.bucket, key=key, content_type=content_type, bytes=reader.bytes_read)

    def put_bytes(self, key: str, data: bytes, content_type: str) -> ObjectRef:
        """Store bytes; the reference is pinned to what was stored (its ETag: read back by IfMatch)."""
        answer = self._client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)
        etag = str(answer.get("ETag", "")).strip('"') or None
        return ObjectRef(bucket=self.bucket, key=key, content_type=content_type, etag=etag)

    def delete_prefix(self, prefix: str) -> int:
        """Remove every object under `prefix` (a job's partial outputs); returns how many."""
        deleted = 0
        for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            keys: list[Any] = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if keys:
                answer = self._client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True})
                # A quiet DeleteObjects answers 200 with the keys it could not delete in Errors
                # (S3 API reference): a cleanup that failed must not pass for one that worked.
                if answer.get("Errors"):
                    first = answer["Errors"][0]
                    failed = len(answer["Errors"])
                    raise RuntimeError(f"{failed} of {len(keys)} not deleted: {first.get('Code')} {first.get('Key')}")
                deleted += len(keys)
        return deleted

    def presigned_post(
        self, key: str, content_type: str, max_bytes: int, ttl_seconds: int
    ) -> tuple[str, dict[str, str]]:
        """A browser-form upload of exactly this key, type and size range (S3 enforces them)."""
        answer = self._client.generate_presigned_post(
            Bucket=self.bucket,
            Key=key,
            Fields={"Content-Type": content_type},
            Conditions=[{"Content-Type": content_type}, ["content-length-range", 1, max_bytes]],
            ExpiresIn=ttl_seconds,
        )
        return str(answer["url"]), {name: str(value) for name, value in answer["fields"].items()}

    def presigned_url(self, key: str, ttl_seconds: int) -> str:
        return self._client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=ttl_seconds
        )
