"""Adapters over boto3 for SQS, Step Functions and S3. Clients are injected or built lazily."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any

import boto3
from botocore.exceptions import ClientError

from imagejobs.models import Output

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_stepfunctions import SFNClient
else:
    S3Client = SQSClient = SFNClient = Any


class SubmitQueue:
    def __init__(self, queue_url: str, client: SQSClient | None = None) -> None:
        self._url = queue_url
        self._client = client or boto3.client("sqs")

    def send(self, job_id: str) -> None:
        self._client.send_message(QueueUrl=self._url, MessageBody=json.dumps({"job_id": job_id}))


class Executions:
    def __init__(self, state_machine_arn: str, client: SFNClient | None = None) -> None:
        self._arn = state_machine_arn
        self._client = client or boto3.client("stepfunctions")

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

    def arn_for(self, name: str) -> str:
        prefix, _, machine = self._arn.rpartition(":stateMachine:")
        return f"{prefix}:execution:{machine}:{name}"


class _ChunkReader:
    """A read()-able view of a chunk iterator, so upload_fileobj streams without buffering it all."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""
        self.bytes_read = 0

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


class ResultStore:
    def __init__(self, bucket: str, client: S3Client | None = None) -> None:
        self.bucket = bucket
        self._client = client or boto3.client("s3")

    def put_stream(self, key: str, chunks: Iterator[bytes], content_type: str, metadata: dict[str, str]) -> Output:
        reader = _ChunkReader(chunks)
        body: IO[bytes] = reader  # type: ignore[assignment]
        self._client.upload_fileobj(
            body, self.bucket, key, ExtraArgs={"ContentType": content_type, "Metadata": metadata}
        )
        return Output(bucket=self.bucket, key=key, content_type=content_type, bytes=reader.bytes_read)

    def presigned_url(self, key: str, ttl_seconds: int) -> str:
        return self._client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=ttl_seconds
        )
