"""The admin CLI's calls to AWS APIs moto does not serve, checked against their botocore models."""

from __future__ import annotations

import boto3
from botocore.stub import Stubber

from imagejobs_cli import main


def test_revoking_with_the_stack_flushes_the_stages_authorizer_cache() -> None:
    """Issue #15.16: a revoked key kept working for AuthorizerCacheSeconds. API Gateway's
    FlushStageAuthorizersCache (restApiId, stageName) drops the cached answers; the stub checks the
    request against botocore's model of the API, as AWS would."""
    cloudformation = boto3.client(
        "cloudformation", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    apigateway = boto3.client("apigateway", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(cloudformation) as cfn, Stubber(apigateway) as api:
        cfn.add_response(
            "describe_stack_resource",
            {
                "StackResourceDetail": {
                    "LogicalResourceId": "Api",
                    "PhysicalResourceId": "a1b2c3d4e5",
                    "ResourceType": "AWS::ApiGateway::RestApi",
                    "LastUpdatedTimestamp": "2026-12-01T00:00:00Z",
                    "ResourceStatus": "CREATE_COMPLETE",
                }
            },
            {"StackName": "imagejobs", "LogicalResourceId": "Api"},
        )
        api.add_response("flush_stage_authorizers_cache", {}, {"restApiId": "a1b2c3d4e5", "stageName": "prod"})
        said = main._flush_authorizer_cache("imagejobs", cloudformation, apigateway)
        api.assert_no_pending_responses()
    assert "flushed" in said and "a1b2c3d4e5" in said


def test_a_flush_that_fails_says_what_remains() -> None:
    cloudformation = boto3.client(
        "cloudformation", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(cloudformation) as cfn:
        cfn.add_client_error("describe_stack_resource", "ValidationError", "Stack does not exist")
        said = main._flush_authorizer_cache("gone", cloudformation, object())
    assert "could not be flushed" in said and "AuthorizerCacheSeconds" in said
