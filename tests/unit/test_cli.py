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


def test_the_api_settings_may_come_before_the_command_and_a_commands_own_win() -> None:
    """Issue #20.8: `imagejobs --api-key K generate ...` as well as `imagejobs generate ... --api-key K`."""
    before = main.parser().parse_args(["--api-key", "k1", "--base-url", "http://a", "generate", "a cat"])
    assert (before.api_key, before.base_url) == ("k1", "http://a")
    after = main.parser().parse_args(["--api-key", "k1", "generate", "a cat", "--api-key", "k2"])
    assert after.api_key == "k2"


def test_size_takes_any_width_by_height_and_its_help_names_each_models_sizes() -> None:
    """Issue #20.8: --size is not gpt-image-1's three sizes only (gpt-image-2 takes custom ones);
    whether the model takes it is the API's check, from the catalog."""
    import pytest

    assert main.parser().parse_args(["generate", "a cat", "--size", "2048x1152"]).size == "2048x1152"
    with pytest.raises(SystemExit):
        main.parser().parse_args(["generate", "a cat", "--size", "big"])
    assert "openai/gpt-image-2" in main._sizes_help() and "1536x1024" in main._sizes_help()


def test_costs_by_model_are_one_row_per_model_however_it_was_spelled() -> None:
    from imagejobs_cli import costs

    items = [{"model": "gpt-image-1"}, {"model": "openai/gpt-image-1"}, {"model": "someone/else"}]
    assert [costs.group_of(item, "model") for item in items] == ["openai/gpt-image-1"] * 2 + ["someone/else"]
