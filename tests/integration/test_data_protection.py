"""Stored data as the template promises it: private, encrypted, TLS-only, expiring."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx

from imagejobs_local import deploy
from imagejobs_local.stack import LocalStack
from tests.helpers import wait_for_job

GENERATIONS = "/v1/images/generations?async=true"


def test_buckets_block_public_access_and_encrypt(stack: LocalStack) -> None:
    s3 = stack.client("s3")
    for output in ("ResultsBucketName", "InboxBucketName"):
        bucket = stack.outputs[output]
        block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        assert block == {
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        }
        rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
        assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"


def test_buckets_deny_requests_without_tls() -> None:
    """Checked in the template: offline, moto would apply the Deny without its Condition."""
    resources = deploy.load_template()["Resources"]
    for bucket in ("ResultsBucket", "InboxBucket"):
        policy = next(
            r["Properties"]["PolicyDocument"]
            for r in resources.values()
            if r["Type"] == "AWS::S3::BucketPolicy" and r["Properties"]["Bucket"] == {"Ref": bucket}
        )
        assert {
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }.items() <= {k: v for k, v in policy["Statement"][0].items() if k != "Resource" and k != "Sid"}.items()


def test_results_expire_after_the_retention_parameter(stack: LocalStack) -> None:
    rules = stack.client("s3").get_bucket_lifecycle_configuration(Bucket=stack.outputs["ResultsBucketName"])["Rules"]
    days = deploy.load_template()["Parameters"]["ResultRetentionDays"]["Default"]
    assert [(rule["Status"], rule["Expiration"]["Days"], rule["Filter"]["Prefix"]) for rule in rules] == [
        ("Enabled", days, ""),
        ("Enabled", 2, "inputs/uploads/"),  # images uploaded for edits (POST /v1/uploads)
    ]


def test_result_urls_live_minutes_and_are_fresh_on_every_get(stack: LocalStack, api: httpx.Client) -> None:
    job_id = api.post(GENERATIONS, json={"prompt": "a short-lived link", "quality": "low"}).json()["id"]
    job = wait_for_job(api, job_id)
    ttl = str(deploy.load_template()["Parameters"]["ResultUrlTtlSeconds"]["Default"])
    for url in job["unsigned_urls"]:
        query = parse_qs(urlsplit(url).query)
        expires = query.get("X-Amz-Expires") or query.get("Expires")
        assert expires is not None
        if "X-Amz-Expires" in query:
            assert expires == [ttl]
    # Nothing long-lived is stored: the record keeps keys, URLs are signed per GET.
    assert "X-Amz" not in stack.store.get(job_id).model_dump_json()  # type: ignore[union-attr]
