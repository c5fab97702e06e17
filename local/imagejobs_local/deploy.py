"""template.yaml -> CloudFormation (aws-sam-translator, offline) -> moto, with the known gaps fixed.

Each fix answers one gap of moto 5.2.5 (docs/offline.md, "Offline runtime"):
- local CodeUri/ContentUri/DefinitionUri paths become placeholder s3:// URIs (uploaded as zips);
- API Gateway resources are left out (moto cannot deploy SAM's RestApi `Body`, nor invoke Lambda
  through it); the local gateway serves the routes from the template's Api events instead;
- the state machine is left out of the stack and created through the Step Functions API, where
  moto's ASL interpreter runs it, with DefinitionSubstitutions resolved from stack outputs;
- Secrets Manager secrets, S3 bucket policies and SQS queue policies are not in moto's
  CloudFormation: secrets are created first (their ARN folded into the template), policies are
  applied after the deploy (bucket policies without conditional Deny statements: moto ignores
  Conditions, so aws:SecureTransport=false would deny every request);
- S3 NotificationConfiguration, PublicAccessBlockConfiguration and LifecycleConfiguration are
  ignored by moto's CloudFormation: applied after the deploy;
- scheduled rules are left out (moto has no scheduler and would match them against every event);
  the local runtime can run the schedules itself.
"""

from __future__ import annotations

import copy
import io
import json
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

ROOT = Path(__file__).resolve().parents[2]
ARTIFACT_BUCKET = "imagejobs-local-artifacts"
SUBST_OUTPUT_PREFIX = "LocalSubstitution"
LEFT_OUT_PREFIXES = ("AWS::ApiGateway::", "AWS::ApiGatewayV2::")
# moto's CloudFormation skips these: the deploy puts them through the CloudWatch API.
CLOUDWATCH_TYPES = ("AWS::CloudWatch::Alarm", "AWS::CloudWatch::Dashboard")
# Bucket properties moto's CloudFormation does not apply; the deploy applies them through the S3 API.
BUCKET_SETTINGS = (
    "PublicAccessBlockConfiguration",
    "LifecycleConfiguration",
    "NotificationConfiguration",
    "CorsConfiguration",
)


@dataclass
class Route:
    method: str  # ANY or an HTTP verb
    path: str  # API Gateway resource path, e.g. /v1/jobs/{id}
    function_logical_id: str
    public: bool = False  # Auth: {Authorizer: NONE}: no authorizer in front of it


@dataclass
class Authorizer:
    """The API's default Lambda TOKEN authorizer, as the template declares it."""

    function_logical_id: str
    header: str
    cache_seconds: float


def api_authorizer(template: dict[str, Any], parameters: dict[str, str]) -> Authorizer | None:
    for resource in template["Resources"].values():
        if resource.get("Type") != "AWS::Serverless::Api":
            continue
        auth = resource["Properties"].get("Auth") or {}
        default = auth.get("DefaultAuthorizer")
        if not default:
            continue
        spec = auth["Authorizers"][default]
        function_arn = spec["FunctionArn"]
        logical_id = function_arn["Fn::GetAtt"][0] if isinstance(function_arn, dict) else str(function_arn)
        identity = spec.get("Identity") or {}
        ttl = identity.get("ReauthorizeEvery", 300)
        if isinstance(ttl, dict) and "Ref" in ttl:
            name = ttl["Ref"]
            ttl = parameters.get(name, template["Parameters"][name].get("Default", 300))
        return Authorizer(logical_id, identity.get("Header", "Authorization"), float(ttl))
    return None


@dataclass
class Deployment:
    stack_name: str
    outputs: dict[str, str]
    physical_ids: dict[str, str]  # logical id -> physical id
    code_dirs: dict[str, Path]  # artifact key -> local source folder
    routes: list[Route]
    state_machine_arn: str
    state_machine_role_arn: str | None = None
    function_names: dict[str, str] = field(default_factory=dict)  # logical id -> function name
    function_code: dict[str, Path] = field(default_factory=dict)  # logical id -> source folder
    gateway_responses: dict[str, Any] = field(default_factory=dict)  # e.g. REQUEST_TOO_LARGE -> its spec
    schedules: dict[str, float] = field(default_factory=dict)  # function logical id -> seconds between runs
    authorizer: Authorizer | None = None


class _StaticPolicyLoader(ManagedPolicyLoader):
    """SAM asks IAM for AWS-managed policy ARNs; offline we answer by name."""

    def __init__(self) -> None:
        pass

    def load(self) -> dict[str, str]:
        return {}


def load_template(path: Path = ROOT / "template.yaml") -> dict[str, Any]:
    return yaml_parse(path.read_text(encoding="utf-8"))


def api_routes(template: dict[str, Any]) -> list[Route]:
    routes = []
    for logical_id, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        for event in (resource["Properties"].get("Events") or {}).values():
            if event.get("Type") == "Api":
                props = event["Properties"]
                public = (props.get("Auth") or {}).get("Authorizer") == "NONE"
                routes.append(Route(props["Method"].upper(), props["Path"], logical_id, public))
    return routes


def _localise_code(template: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Path], dict[str, Any]]:
    """Swap local paths for placeholder S3 URIs; return the state machine separately."""
    template = copy.deepcopy(template)
    code_dirs: dict[str, Path] = {}
    state_machines: dict[str, Any] = {}
    for logical_id, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            value = props.get(key)
            if isinstance(value, str) and not value.startswith("s3://"):
                artifact = value.strip("/")
                code_dirs[artifact] = ROOT / artifact
                props[key] = f"s3://{ARTIFACT_BUCKET}/{artifact}"
        if resource.get("Type") == "AWS::Serverless::StateMachine":
            state_machines[logical_id] = copy.deepcopy(props)
            props["DefinitionUri"] = f"s3://{ARTIFACT_BUCKET}/statemachine.json"
    return template, code_dirs, state_machines


def _references(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                target = value[0] if isinstance(value, list) else str(value).split(".")[0]
                found.add(target)
            elif key == "Fn::Sub":
                text = value[0] if isinstance(value, list) else value
                found.update(name.split(".")[0] for name in re.findall(r"\$\{([^}!]+)\}", str(text)))
                found |= _references(value[1] if isinstance(value, list) and len(value) > 1 else {})
            elif key == "DependsOn":
                found.update([value] if isinstance(value, str) else value)
            else:
                found |= _references(value)
    elif isinstance(node, list):
        for item in node:
            found |= _references(item)
    return found


def to_local_cloudformation(
    template: dict[str, Any], parameters: dict[str, str]
) -> tuple[dict[str, Any], dict[str, Path], dict[str, Any]]:
    sam, code_dirs, state_machines = _localise_code(template)
    cfn = transform(sam, parameters, _StaticPolicyLoader())
    resources = cfn["Resources"]
    # Alarms and dashboards name the state machine, which is made outside moto's CloudFormation:
    # they get its ARN from its name instead of a Ref, and stay in the deploy.
    for machine_id, machine in state_machines.items():
        name = machine.get("Name")
        name_text = name.get("Fn::Sub") if isinstance(name, dict) else name
        if not isinstance(name_text, str):
            continue
        arn_text = "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:stateMachine:" + name_text
        for logical_id, resource in resources.items():
            if resource["Type"] in CLOUDWATCH_TYPES:
                text = json.dumps(resource).replace("${" + machine_id + "}", arn_text.replace('"', '\\"'))
                resources[logical_id] = _replace_node(json.loads(text), {"Ref": machine_id}, {"Fn::Sub": arn_text})
    removed = {
        logical_id
        for logical_id, resource in resources.items()
        if resource["Type"].startswith(LEFT_OUT_PREFIXES)
        or resource["Type"] == "AWS::StepFunctions::StateMachine"
        or _is_schedule(resource)
    }
    changed = True
    while changed:  # drop whatever depends on a dropped resource (e.g. Lambda permissions for the API)
        changed = False
        for logical_id, resource in resources.items():
            if logical_id not in removed and _references(resource) & removed:
                removed.add(logical_id)
                changed = True
    for logical_id in removed:
        resources.pop(logical_id)
    cfn["Outputs"] = {
        name: output for name, output in (cfn.get("Outputs") or {}).items() if not _references(output) & removed
    }
    for machine in state_machines.values():
        for key, value in (machine.get("DefinitionSubstitutions") or {}).items():
            cfn["Outputs"][SUBST_OUTPUT_PREFIX + key] = {"Value": value}
    return cfn, code_dirs, state_machines


def _is_schedule(resource: dict[str, Any]) -> bool:
    """Scheduled rules: moto has no scheduler, and matches every put event against a rule without a
    pattern (then fails on its Lambda target). The local runtime runs schedules itself."""
    return resource["Type"] == "AWS::Events::Rule" and "ScheduleExpression" in resource.get("Properties", {})


def schedules(template: dict[str, Any]) -> dict[str, float]:
    """Function logical id -> seconds between runs, from the template's Schedule events (rate(...) only)."""
    units = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86_400, "days": 86_400}
    found: dict[str, float] = {}
    for logical_id, resource in template["Resources"].items():
        for event in (resource.get("Properties", {}).get("Events") or {}).values():
            expression = (event.get("Properties") or {}).get("Schedule", "")
            match = re.fullmatch(r"rate\((\d+) (\w+)\)", expression) if event.get("Type") == "Schedule" else None
            if match:
                found[logical_id] = int(match.group(1)) * units[match.group(2)]
    return found


def _zip_of(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(folder.rglob("*.py")):
            archive.write(path, path.relative_to(folder).as_posix())
    return buffer.getvalue()


def deploy(stack_name: str, parameters: dict[str, str], region: str = "us-east-1") -> Deployment:
    template = load_template()
    cfn, code_dirs, state_machines = to_local_cloudformation(template, parameters)

    s3 = boto3.client("s3", region_name=region)
    s3.create_bucket(Bucket=ARTIFACT_BUCKET)
    for artifact, folder in code_dirs.items():
        s3.put_object(Bucket=ARTIFACT_BUCKET, Key=artifact, Body=_zip_of(folder))

    # moto's CloudFormation has no Secrets Manager secrets: create them first, fold their ARN in.
    secrets = boto3.client("secretsmanager", region_name=region)
    for logical_id, resource in list(cfn["Resources"].items()):
        if resource["Type"] == "AWS::SecretsManager::Secret":
            arn = secrets.create_secret(
                Name=f"{stack_name}-{logical_id}", SecretString=secrets.get_random_password()["RandomPassword"]
            )["ARN"]
            cfn["Resources"].pop(logical_id)
            cfn = _replace_ref(cfn, logical_id, arn)
    # ...nor bucket or queue policies: apply them after the deploy, resolved against the stack.
    deferred = {
        logical_id: cfn["Resources"].pop(logical_id)
        for logical_id, resource in list(cfn["Resources"].items())
        if resource["Type"] in ("AWS::S3::BucketPolicy", "AWS::SQS::QueuePolicy", *CLOUDWATCH_TYPES)
    }
    for resource in cfn["Resources"].values():
        depends = resource.get("DependsOn")
        if depends:
            kept = [name for name in ([depends] if isinstance(depends, str) else depends) if name not in deferred]
            resource["DependsOn"] = kept
            if not kept:
                resource.pop("DependsOn")
    # ...and it ignores bucket notifications, public access blocks and lifecycle rules: apply
    # those after the deploy too.
    bucket_settings = {
        logical_id: {name: resource["Properties"][name] for name in BUCKET_SETTINGS if name in resource["Properties"]}
        for logical_id, resource in cfn["Resources"].items()
        if resource["Type"] == "AWS::S3::Bucket" and resource.get("Properties")
    }

    cloudformation = boto3.client("cloudformation", region_name=region)
    cloudformation.create_stack(
        StackName=stack_name,
        TemplateBody=json.dumps(cfn),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    if stack["StackStatus"] != "CREATE_COMPLETE":
        raise RuntimeError(
            f"local deploy of {stack_name} ended {stack['StackStatus']}: {stack.get('StackStatusReason')}"
        )
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    physical = {
        r["LogicalResourceId"]: r.get("PhysicalResourceId", "")
        for r in cloudformation.describe_stack_resources(StackName=stack_name)["StackResources"]
        if "LogicalResourceId" in r
    }
    for logical_id, resource in deferred.items():
        if resource["Type"] in CLOUDWATCH_TYPES:
            properties = _resolve_in_stack(stack["StackId"], resource["Properties"], region)
            _put_cloudwatch(f"{stack_name}-{logical_id}", resource, properties, region)
            continue
        policy = _resolve_in_stack(stack["StackId"], resource["Properties"], region)
        document = policy["PolicyDocument"]
        if resource["Type"] == "AWS::SQS::QueuePolicy":
            sqs = boto3.client("sqs", region_name=region)
            for queue_url in policy["Queues"]:
                sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": json.dumps(document)})
            continue
        # moto evaluates bucket policies but not their Condition blocks: the TLS-only Deny would
        # deny every request. Conditional Denies are left out offline; the rest is applied.
        document["Statement"] = [
            st for st in document["Statement"] if not (st.get("Effect") == "Deny" and "Condition" in st)
        ]
        if document["Statement"]:
            s3.put_bucket_policy(Bucket=policy["Bucket"], Policy=json.dumps(document))
    for logical_id, settings in bucket_settings.items():
        resolved = _resolve_in_stack(stack["StackId"], settings, region)
        bucket = physical[logical_id]
        if "PublicAccessBlockConfiguration" in resolved:
            s3.put_public_access_block(
                Bucket=bucket, PublicAccessBlockConfiguration=resolved["PublicAccessBlockConfiguration"]
            )
        if "LifecycleConfiguration" in resolved:
            s3.put_bucket_lifecycle_configuration(
                Bucket=bucket,
                LifecycleConfiguration=_lifecycle_api_shape(resolved["LifecycleConfiguration"]),  # type: ignore[arg-type]
            )
        if "CorsConfiguration" in resolved:
            s3.put_bucket_cors(
                Bucket=bucket,
                CORSConfiguration={"CORSRules": _cors_api_shape(resolved["CorsConfiguration"]["CorsRules"])},  # type: ignore[typeddict-item]
            )
        if "NotificationConfiguration" in resolved:
            s3.put_bucket_notification_configuration(
                Bucket=bucket,
                NotificationConfiguration=_notification_api_shape(resolved["NotificationConfiguration"]),  # type: ignore[arg-type]
            )

    sfn = boto3.client("stepfunctions", region_name=region)
    state_machine_arn = ""
    state_machine_role_arn: str | None = None
    for logical_id, machine in state_machines.items():
        definition = (ROOT / machine["DefinitionUri"]).read_text(encoding="utf-8")
        for key in machine.get("DefinitionSubstitutions") or {}:
            definition = definition.replace("${" + key + "}", outputs.pop(SUBST_OUTPUT_PREFIX + key))
        name = _resolve_name(machine.get("Name"), stack_name) or f"{stack_name}-{logical_id}"
        role = physical.get(f"{logical_id}Role")
        role_arn = (
            boto3.client("iam", region_name=region).get_role(RoleName=role)["Role"]["Arn"]
            if role
            else (f"arn:aws:iam::123456789012:role/{name}")
        )
        state_machine_role_arn = role_arn if role else None
        state_machine_arn = sfn.create_state_machine(
            name=name, definition=definition, roleArn=role_arn, type=machine.get("Type", "STANDARD")
        )["stateMachineArn"]
        physical[logical_id] = state_machine_arn

    functions = {
        logical_id: physical[logical_id]
        for logical_id, resource in cfn["Resources"].items()
        if resource["Type"] == "AWS::Lambda::Function"
    }
    return Deployment(
        stack_name=stack_name,
        outputs=outputs,
        physical_ids=physical,
        code_dirs=code_dirs,
        routes=api_routes(template),
        schedules=schedules(template),
        authorizer=api_authorizer(template, parameters),
        gateway_responses=_resolve_in_stack(  # e.g. the Access-Control-Allow-Origin a condition picks
            stack["StackId"],
            {
                kind: spec
                for resource in template["Resources"].values()
                if resource["Type"] == "AWS::Serverless::Api"
                for kind, spec in (resource["Properties"].get("GatewayResponses") or {}).items()
            },
            region,
        ),
        function_code={
            logical_id: ROOT / resource["Properties"]["CodeUri"].strip("/")
            for logical_id, resource in template["Resources"].items()
            if resource["Type"] == "AWS::Serverless::Function"
        },
        state_machine_arn=state_machine_arn,
        state_machine_role_arn=state_machine_role_arn,
        function_names=functions,
    )


def _resolve_name(name: Any, stack_name: str) -> str | None:
    if isinstance(name, dict) and "Fn::Sub" in name and isinstance(name["Fn::Sub"], str):
        return name["Fn::Sub"].replace("${AWS::StackName}", stack_name)
    return name if isinstance(name, str) else None


def _put_cloudwatch(name: str, resource: dict[str, Any], properties: dict[str, Any], region: str) -> None:
    cloudwatch = boto3.client("cloudwatch", region_name=region)
    if resource["Type"] == "AWS::CloudWatch::Dashboard":
        cloudwatch.put_dashboard(DashboardName=properties["DashboardName"], DashboardBody=properties["DashboardBody"])
        return
    alarm = {k: v for k, v in properties.items() if v is not None}
    alarm.setdefault("AlarmName", name)
    if not alarm.get("AlarmActions"):
        alarm.pop("AlarmActions", None)  # the e-mail topic is optional (Fn::If ... AWS::NoValue)
    for number in ("Threshold", "Period", "EvaluationPeriods"):
        if number in alarm:
            alarm[number] = float(alarm[number]) if number == "Threshold" else int(alarm[number])
    for query in alarm.get("Metrics", []):
        stat = query.get("MetricStat")
        if stat:
            stat["Period"] = int(stat["Period"])
    cloudwatch.put_metric_alarm(**alarm)


def _lifecycle_api_shape(configuration: dict[str, Any]) -> dict[str, Any]:
    """CloudFormation's LifecycleConfiguration -> PutBucketLifecycleConfiguration's (the fields we use)."""
    rules = []
    for rule in configuration["Rules"]:
        shaped: dict[str, Any] = {"ID": rule.get("Id", "rule"), "Status": rule["Status"]}
        shaped["Filter"] = {"Prefix": rule.get("Prefix", "")}
        if "ExpirationInDays" in rule:
            shaped["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
        if "AbortIncompleteMultipartUpload" in rule:
            days = int(rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"])
            shaped["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": days}
        rules.append(shaped)
    return {"Rules": rules}


def _notification_api_shape(configuration: dict[str, Any]) -> dict[str, Any]:
    """CloudFormation's NotificationConfiguration -> PutBucketNotificationConfiguration's."""
    shaped: dict[str, Any] = {}
    for cfn_key, api_key, target_key, api_target in (
        ("QueueConfigurations", "QueueConfigurations", "Queue", "QueueArn"),
        ("TopicConfigurations", "TopicConfigurations", "Topic", "TopicArn"),
        ("LambdaConfigurations", "LambdaFunctionConfigurations", "Function", "LambdaFunctionArn"),
    ):
        for entry in configuration.get(cfn_key) or []:
            item: dict[str, Any] = {api_target: entry[target_key], "Events": [entry["Event"]]}
            rules = ((entry.get("Filter") or {}).get("S3Key") or {}).get("Rules")
            if rules:
                item["Filter"] = {"Key": {"FilterRules": rules}}
            shaped.setdefault(api_key, []).append(item)
    if configuration.get("EventBridgeConfiguration"):
        shaped["EventBridgeConfiguration"] = {}
    return shaped


def _replace_node(node: Any, old: Any, new: Any) -> Any:
    if node == old:
        return new
    if isinstance(node, dict):
        return {k: _replace_node(v, old, new) for k, v in node.items()}
    if isinstance(node, list):
        return [_replace_node(v, old, new) for v in node]
    return node


def _replace_ref(node: Any, logical_id: str, value: str) -> Any:
    if isinstance(node, dict):
        if node == {"Ref": logical_id}:
            return value
        return {k: _replace_ref(v, logical_id, value) for k, v in node.items()}
    if isinstance(node, list):
        return [_replace_ref(v, logical_id, value) for v in node]
    return node


def _cors_api_shape(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """CloudFormation's CorsRules -> PutBucketCors' (AllowedHeaders, AllowedMethods, AllowedOrigins,
    ExposeHeaders, MaxAgeSeconds)."""
    renamed = {"ExposedHeaders": "ExposeHeaders", "MaxAge": "MaxAgeSeconds"}
    # (moto's resolver gives a Ref to a CommaDelimitedList as its text; CloudFormation, as a list)
    return [
        {
            renamed.get(name, name): value.split(",") if isinstance(value, str) and name != "MaxAge" else value
            for name, value in rule.items()
        }
        for rule in rules
    ]


def _resolve_in_stack(stack_id: str, properties: Any, region: str) -> Any:
    """Resolve intrinsic functions the way moto's CloudFormation does (its own resolver)."""
    from moto.cloudformation.models import cloudformation_backends
    from moto.cloudformation.parsing import clean_json
    from moto.core import DEFAULT_ACCOUNT_ID

    stack = cloudformation_backends[DEFAULT_ACCOUNT_ID][region].stacks[stack_id]
    return clean_json(copy.deepcopy(properties), stack.resource_map)
