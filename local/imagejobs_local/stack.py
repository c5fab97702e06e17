"""The whole stack offline: moto (in-process or as a local server), template.yaml deployed into it,
handlers run in-process, the simulated provider, and the local API gateway."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3

from imagejobs.adapters.store import JobStore
from imagejobs.adapters.tenants import Tenants
from imagejobs.domain import clock, webhooks
from imagejobs_local import atomic_dynamodb, clock_patches, deploy, iam, lambdas, moto_seam
from imagejobs_local.gateway import LocalGateway
from imagejobs_local.provider_sim import SimulatedProvider
from imagejobs_local.sim_behaviour import Latency
from imagejobs_local.sqs_poller import QueuePoller, install_fair_queues, take_over_mappings

REGION = "us-east-1"
LOCAL_TENANT = "local"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class StackOptions:
    server: bool = False  # True: a moto server on 127.0.0.1 (reachable by aws cli, curl, boto3)
    time_scale: float = 0.01
    parameters: dict[str, str] = field(default_factory=dict)
    latency: Latency = field(default_factory=Latency)
    gateway: bool = True
    gateway_port: int = 0
    moto_port: int = 0
    seed: int | None = None
    log_level: str = "WARNING"
    api_key: str | None = None
    schedules: bool = False  # run the template's Schedule events (e.g. the sweeper) on the job clock
    fault_rate: float = 0.0  # the simulated provider serves a random transient fault on this share of calls
    provider_max_concurrent: int = 0  # the simulated provider's own concurrency limit (429 past it; 0: none)
    # Any TheRouter-compatible endpoint instead of the simulator (a real one with a real key too):
    # `make serve PROVIDER_URL=https://... PROVIDER_KEY=...`. Downloads are allowed from its host.
    provider_url: str | None = None
    provider_key: str | None = None


def provider_from_env(time_scale: float) -> tuple[dict[str, Any], float]:
    """PROVIDER_URL / PROVIDER_KEY from the environment (make serve, make demo): the options that
    point the stack at that provider, and the time scale to run at (1: a real provider's jobs take
    real seconds, and a scaled clock would expire them)."""
    url = os.environ.get("PROVIDER_URL") or None
    if url is None:
        return {}, time_scale
    key = os.environ.get("PROVIDER_KEY") or ""
    if not key:
        raise SystemExit("PROVIDER_URL is set but PROVIDER_KEY is not: the provider's API key is needed")
    print(f"# provider: {url} (real time: the job clock is not scaled)", file=sys.stderr)
    return {"provider_url": url.rstrip("/"), "provider_key": key}, 1.0


class LocalStack:
    def __init__(self, options: StackOptions | None = None) -> None:
        self.options = options or StackOptions()
        self.stack_name = "imagejobs-" + uuid.uuid4().hex[:8]
        self.provider = SimulatedProvider(
            latency=self.options.latency,
            seed=self.options.seed,
            fault_rate=self.options.fault_rate,
            max_concurrent=self.options.provider_max_concurrent,
        )
        self.api_key = self.options.api_key or "sk-local-" + secrets.token_hex(16)
        self.deployment: deploy.Deployment | None = None
        self.gateway: LocalGateway | None = None
        self.pollers: list[QueuePoller] = []
        self.aws_endpoint_url: str | None = None
        self.webhook_secret: str | None = None
        self._mock: Any = None
        self._server: Any = None
        self._saved_env: dict[str, str | None] = {}
        self.admin: iam.Keys | None = None
        self._stopping = threading.Event()
        self._scheduler: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> LocalStack:
        moto_seam.check()  # before any patch: an upgraded moto fails here, naming what moved
        options = self.options
        self._set_env(
            AWS_DEFAULT_REGION=REGION,
            AWS_REGION=REGION,
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_SESSION_TOKEN="testing",
            IMAGEJOBS_TIME_SCALE=str(options.time_scale),
            IMAGEJOBS_CLOCK_ANCHOR=repr(time.time()),
            POWERTOOLS_TRACE_DISABLED="true",
        )
        if options.server:
            from moto.core.config import default_user_config
            from moto.server import ThreadedMotoServer

            default_user_config.setdefault("stepfunctions", {})["execute_state_machine"] = True
            logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log per AWS call
            port = options.moto_port or free_port()
            self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
            self._server.start()
            self.aws_endpoint_url = f"http://127.0.0.1:{port}"
            self._set_env(AWS_ENDPOINT_URL=self.aws_endpoint_url, MOTO_PORT=str(port))
        else:
            from moto import mock_aws

            self._mock = mock_aws(config={"stepfunctions": {"execute_state_machine": True}})
            self._mock.start()
        iam.install()
        lambdas.install()
        clock_patches.install()
        atomic_dynamodb.install()
        install_fair_queues()
        if options.provider_url is None:
            self.provider.start()

        parameters = {
            "ProviderBaseUrl": options.provider_url or self.provider.base_url,
            "OpenAIBaseUrl": self.provider.base_url,  # the simulator's OpenAI dialect (sim_openai)
            "LogLevel": options.log_level,
            "WebhookAllowLoopback": "true",  # offline: webhooks may reach receivers on 127.0.0.1
        }
        if options.provider_url is None:
            # The simulator answers a repeated Idempotency-Key with the job it has (provider_sim.py);
            # another provider gets the template's default, "none", unless told otherwise.
            parameters["ProviderIdempotency"] = "header"
        parameters.update(options.parameters)
        self.deployment = deploy.deploy(self.stack_name, parameters, REGION)
        for logical_id, name in self.deployment.function_names.items():
            lambdas.register(name, self.deployment.function_code[logical_id])
        self._enforce_iam()
        boto3.client("secretsmanager", region_name=REGION).put_secret_value(
            SecretId=self.outputs["ProviderApiKeySecretArn"],
            SecretString=(options.provider_key or "") if options.provider_url else self.provider.api_key,
        )
        openai = {"api_key": self.provider.openai.api_key, "webhook_secret": self.provider.openai.webhook_secret}
        boto3.client("secretsmanager", region_name=REGION).put_secret_value(
            SecretId=self.outputs["OpenAIApiKeySecretArn"], SecretString=json.dumps(openai)
        )
        self.tenants.add_key(self.api_key, LOCAL_TENANT, clock.now(), name="local")
        self.webhook_secret = self.store.ensure_webhook_secret(LOCAL_TENANT, webhooks.new_secret())
        self.pollers = [QueuePoller(mapping, REGION).start() for mapping in take_over_mappings(REGION)]
        if options.schedules:
            self._scheduler = threading.Thread(target=self._run_schedules, name="local-schedules", daemon=True)
            self._scheduler.start()
        if options.gateway:
            self.gateway = LocalGateway(
                self.deployment.routes,
                self.deployment.function_names,
                REGION,
                port=options.gateway_port,
                gateway_responses=self.deployment.gateway_responses,
                authorizer=self.deployment.authorizer,
            ).start()
            # the simulator's OpenAI dialect sends its webhooks where OpenAI's dashboard would be told to
            self.provider.openai.webhook_url = f"{self.gateway.base_url}/v1/providers/openai/webhooks"
        return self

    def _enforce_iam(self) -> None:
        """From here on each function calls AWS as its own role, with moto checking IAM; this
        process (tests, the runtime, make serve's users) is an admin user (imagejobs_local.iam)."""
        assert self.deployment is not None
        functions = boto3.client("lambda", region_name=REGION)
        roles = {
            name: functions.get_function(FunctionName=name)["Configuration"]["Role"]
            for name in self.deployment.function_names.values()
        }
        self.admin = iam.enforce(REGION, roles, self.deployment.state_machine_role_arn)
        self._set_env(AWS_ACCESS_KEY_ID=self.admin.access_key_id, AWS_SECRET_ACCESS_KEY=self.admin.secret_access_key)
        self._saved_env.setdefault("AWS_SESSION_TOKEN", os.environ.get("AWS_SESSION_TOKEN"))
        os.environ.pop("AWS_SESSION_TOKEN", None)  # an IAM user's keys carry no session token
        boto3.DEFAULT_SESSION = None  # the next boto3.client() reads the new keys

    def stop(self) -> None:
        self._stopping.set()
        for poller in self.pollers:
            poller.stop()
        if self.gateway:
            self.gateway.stop()
        self._stop_executions()
        if self.options.provider_url is None:
            self.provider.stop()
        if self.deployment:
            lambdas.unregister(list(self.deployment.function_names.values()))
        iam.relax()
        if self._mock is not None:
            self._mock.stop()
        if self._server is not None:
            self._server.stop()
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what users and tests need --------------------------------------------------------------
    @property
    def outputs(self) -> dict[str, str]:
        assert self.deployment is not None
        return self.deployment.outputs

    @property
    def event_bus_name(self) -> str:
        return self.options.parameters.get("EventBusName", "default")

    @property
    def request_source(self) -> str:
        return self.options.parameters.get("RequestSource", "imagejobs.requests")

    @property
    def state_machine_arn(self) -> str:
        assert self.deployment is not None
        return self.deployment.state_machine_arn

    @property
    def base_url(self) -> str:
        assert self.gateway is not None, "started without the gateway"
        return self.gateway.base_url

    @property
    def store(self) -> JobStore:
        return JobStore(
            self.outputs["JobsTableName"],
            boto3.resource("dynamodb", region_name=REGION).Table(self.outputs["JobsTableName"]),
        )

    @property
    def tenants(self) -> Tenants:
        return Tenants(
            self.outputs["JobsTableName"],
            boto3.resource("dynamodb", region_name=REGION).Table(self.outputs["JobsTableName"]),
        )

    def job_events_queue(self, name: str) -> str:
        """What a pipeline does to hear about jobs: a rule on the stack's bus for our job events,
        delivering to its own queue. Returns the queue's URL."""
        sqs = self.client("sqs")
        url = str(sqs.create_queue(QueueName=name)["QueueUrl"])
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events = self.client("events")
        events.put_rule(Name=name, EventBusName=self.event_bus_name, EventPattern=json.dumps({"source": ["imagejobs"]}))
        events.put_targets(Rule=name, EventBusName=self.event_bus_name, Targets=[{"Id": "queue", "Arn": arn}])
        return url

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=REGION)  # type: ignore[call-overload]

    def function_name(self, logical_id: str) -> str:
        assert self.deployment is not None
        return self.deployment.function_names[logical_id]

    @contextlib.contextmanager
    def function_settings(self, logical_id: str, **variables: str) -> Iterator[None]:
        """Run a function with some environment variables changed (as a configuration update does
        on Lambda: its warm instances are dropped), restored afterwards."""
        functions = self.client("lambda")
        name = self.function_name(logical_id)
        # (moto keeps Number parameters as ints; Lambda's API takes strings)
        configured = functions.get_function_configuration(FunctionName=name)["Environment"]["Variables"]
        before = {key: str(value) for key, value in configured.items()}
        functions.update_function_configuration(FunctionName=name, Environment={"Variables": {**before, **variables}})
        lambdas.recycle([name])
        try:
            yield
        finally:
            functions.update_function_configuration(FunctionName=name, Environment={"Variables": before})
            lambdas.recycle([name])

    def run_scheduled(self, logical_id: str) -> dict[str, Any]:
        """Invoke a scheduled function now, with a scheduled event, as EventBridge would."""
        event = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": "123456789012",
            "region": REGION,
            "resources": [],
            "detail": {},
        }
        answer = self.client("lambda").invoke(
            FunctionName=self.function_name(logical_id), Payload=json.dumps(event).encode()
        )
        return dict(json.loads(answer["Payload"].read() or b"{}"))

    def _run_schedules(self) -> None:
        assert self.deployment is not None
        next_run = {logical_id: time.monotonic() for logical_id in self.deployment.schedules}
        while not self._stopping.wait(0.2):
            for logical_id, every in self.deployment.schedules.items():
                if time.monotonic() >= next_run[logical_id]:
                    next_run[logical_id] = time.monotonic() + every * clock.time_scale()
                    with contextlib.suppress(Exception):  # a failed run is retried at the next tick
                        self.run_scheduled(logical_id)

    def emf_documents(self, function_logical_id: str) -> list[dict[str, Any]]:
        """The EMF documents a function wrote to its CloudWatch log group (what CloudWatch would ingest)."""
        logs = self.client("logs")
        group = f"/aws/lambda/{self.function_name(function_logical_id)}"
        documents: list[dict[str, Any]] = []
        try:
            pages = logs.get_paginator("filter_log_events").paginate(logGroupName=group)
            for page in pages:
                for event in page["events"]:
                    for line in event["message"].splitlines():
                        if line.startswith("{") and '"_aws"' in line:
                            documents.append(json.loads(line))
        except logs.exceptions.ResourceNotFoundException:
            return []
        return documents

    def job_metrics(self, job_id: str) -> list[dict[str, Any]]:
        """Every EMF document about one job, from every function."""
        assert self.deployment is not None
        return [
            document
            for logical_id in self.deployment.function_names
            for document in self.emf_documents(logical_id)
            if document.get("job_id") == job_id
        ]

    def _set_env(self, **values: str) -> None:
        for name, value in values.items():
            self._saved_env.setdefault(name, os.environ.get(name))
            os.environ[name] = value

    def _stop_executions(self) -> None:
        if not self.deployment or not self.deployment.state_machine_arn:
            return
        sfn = self.client("stepfunctions")
        try:
            running = sfn.list_executions(stateMachineArn=self.deployment.state_machine_arn, statusFilter="RUNNING")
            for execution in running.get("executions", []):
                sfn.stop_execution(executionArn=execution["executionArn"])
        except Exception:
            pass
