"""Runs Lambda functions in this process instead of Docker, behind moto's own Lambda service.

Every invocation in moto (Invoke API, Step Functions lambda:invoke, our SQS poller, the local
gateway) goes through `LambdaFunction._invoke_lambda`; we replace it with a call of the real
handler module, loaded once per function with the function's environment (its cold start).

On Lambda an execution environment is a process that handles one event at a time, and libraries
rely on that: Powertools' event handler keeps the current event in a class attribute, its Logger
shares formatter state per service name, and environment variables are process-wide. Here all
functions share one process, so invocations take turns (one at a time, in arrival order); the
stack around them (executions, queue pollers, the gateway) still runs concurrently. What a
handler prints (Powertools logs, EMF metrics) goes to the function's CloudWatch log group.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import logging
import os
import sys
import threading
import time
import traceback
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO

from imagejobs.domain import clock
from imagejobs_local import iam, meter

_capture = threading.local()


class _PerFunctionProviders(dict[str, Any]):
    """Powertools Parameters keeps its providers (each with a boto3 client and a value cache) in
    one module-level dict, DEFAULT_PROVIDERS: one per process, so on Lambda one per function. Here
    each function running on a thread sees its own, so no function reads a secret through a client
    signed as another function's role, or from another function's cache."""

    def __init__(self) -> None:
        super().__init__()
        self._by_function: dict[str, dict[str, Any]] = {}

    def _mine(self) -> dict[str, Any]:
        return self._by_function.setdefault(iam.current_function() or "", {})

    def __contains__(self, key: object) -> bool:
        return key in self._mine()

    def __getitem__(self, key: str) -> Any:
        return self._mine()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._mine()[key] = value

    def get(self, key: str, default: Any = None) -> Any:
        return self._mine().get(key, default)

    def clear(self) -> None:
        self._mine().clear()


def _separate_powertools_providers() -> None:
    import aws_lambda_powertools.utilities.parameters as parameters
    from aws_lambda_powertools.utilities.parameters import base, constants

    providers = _PerFunctionProviders()
    for module in (constants, base, parameters, *(getattr(parameters, name, None) for name in dir(parameters))):
        if isinstance(module, ModuleType) and isinstance(getattr(module, "DEFAULT_PROVIDERS", None), dict):
            module.DEFAULT_PROVIDERS = providers  # type: ignore[attr-defined]


class _ThreadStdout(io.TextIOBase):
    """sys.stdout that writes to the current invocation's log buffer, if this thread has one."""

    def __init__(self, real: TextIO) -> None:
        self.real = real

    def write(self, text: str) -> int:
        buffer = getattr(_capture, "buffer", None)
        return buffer.write(text) if buffer is not None else self.real.write(text)

    def flush(self) -> None:
        if getattr(_capture, "buffer", None) is None:
            with contextlib.suppress(ValueError):  # at interpreter exit, pytest's capture is closed
                self.real.flush()


class _TimedOut(Exception):
    """The invocation ran past its function's Timeout."""


@dataclass
class FunctionCode:
    folder: Path
    handler: str  # "app.handler"
    module: ModuleType | None = None  # the warm instance, after the cold start
    cold_starts: int = 0


class LambdaContext:
    def __init__(self, function: Any) -> None:
        self.function_name = function.function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = function.function_arn
        self.memory_limit_in_mb = int(function.memory_size or 128)
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function.function_name}"
        self.log_stream_name = "local"
        self._timeout = int(function.timeout or 3)
        self._started = time.monotonic()

    def get_remaining_time_in_millis(self) -> int:
        """As on Lambda, the function's timeout less the time used: compute in real seconds, sleeps
        (clock.sleep, scaled offline) in job seconds, so a time budget holds on the job clock."""
        slept_real = getattr(_capture, "slept_real", 0.0)
        used = (time.monotonic() - self._started - slept_real) + slept_real / clock.time_scale()
        return int((self._timeout - used) * 1000)


_registry: dict[str, FunctionCode] = {}
# One invocation at a time (see above). Reentrant, in case a handler ever invokes another
# function synchronously on its own thread.
_turn = threading.RLock()
_installed = False


def register(function_name: str, folder: Path, handler: str = "app.handler") -> None:
    _registry[function_name] = FunctionCode(folder=folder, handler=handler)


def unregister(function_names: list[str]) -> None:
    for name in function_names:
        _registry.pop(name, None)


def recycle(function_names: list[str]) -> None:
    """Drop the warm instances (as a configuration change does on Lambda): next calls start cold."""
    with _turn:
        for name in function_names:
            if name in _registry:
                _registry[name].module = None


def cold_starts(function_name: str) -> int:
    return _registry[function_name].cold_starts


def _load_instance(function: Any, code: FunctionCode) -> ModuleType:
    module_name, _, _ = code.handler.partition(".")
    os.environ.update({k: str(v) for k, v in (function.environment_vars or {}).items()})
    os.environ["AWS_LAMBDA_FUNCTION_NAME"] = function.function_name
    code.cold_starts += 1
    unique = f"imagejobs_fn_{function.function_name.replace('-', '_')}_{code.cold_starts}"
    spec = importlib.util.spec_from_file_location(unique, code.folder / f"{module_name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _invoke_in_process(self: Any, event: Any = None) -> tuple[str, bool, str]:
    code = _registry.get(self.function_name)
    if code is None:
        return json.dumps({"errorType": "ResourceNotFound", "errorMessage": "no local code"}), True, ""
    with _turn, iam.acting_as(self.function_name):
        _capture.invoking = True
        try:
            return _run(self, code, event)
        finally:
            _capture.invoking = False


def _sleep_between_turns(seconds: float, wall: bool = False) -> None:
    """clock.sleep inside a handler: on Lambda a sleeping function blocks nobody (each is its
    own process), so here it gives up its turn while it sleeps and takes the next one after.
    A job-clock sleep counts against the function's timeout in job seconds; a wall-clock one
    (clock.wall_sleep: a caller's wait) in the real seconds it took, like computing."""
    if not getattr(_capture, "invoking", False):
        time.sleep(seconds)
        return
    if not wall:
        _capture.slept_real = getattr(_capture, "slept_real", 0.0) + seconds
    _turn.release()
    try:
        time.sleep(seconds)
    finally:
        _turn.acquire()


def _apply_log_level(function: Any) -> None:
    """Powertools configures a service's logger once per process (the first Logger made wins:
    its level, and its handler's stream, maybe made outside any invocation). On Lambda each
    function is its own process writing to its own log; here each invocation gets its function's
    level, and the handlers write through the per-invocation stdout."""
    variables = function.environment_vars or {}
    service_logger = logging.getLogger(str(variables.get("POWERTOOLS_SERVICE_NAME") or "imagejobs"))
    level = str(variables.get("POWERTOOLS_LOG_LEVEL") or "").upper()
    if level in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        service_logger.setLevel(level)
    for handler in service_logger.handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler.stream, _ThreadStdout):
            handler.setStream(sys.stdout)


def _run(function: Any, code: FunctionCode, event: Any) -> tuple[str, bool, str]:
    if not isinstance(sys.stdout, _ThreadStdout):  # test runners swap sys.stdout; wrap whatever is there
        sys.stdout = _ThreadStdout(sys.stdout)
    buffer = io.StringIO()
    _capture.buffer = buffer
    errored = False
    context: LambdaContext | None = None
    try:
        if code.module is None:
            code.module = _load_instance(function, code)
        _apply_log_level(function)
        handler = getattr(code.module, code.handler.partition(".")[2])
        if isinstance(event, str):
            event = json.loads(event or "{}")
        _capture.slept_real = 0.0
        context = LambdaContext(function)
        result = handler(event, context)
        if context.get_remaining_time_in_millis() < 0:
            # Lambda would have stopped it at its timeout: the caller sees the runtime's timeout
            # error, not the result (https://docs.aws.amazon.com/lambda/latest/dg/services-stepfunctions.html).
            raise _TimedOut(f"Task timed out after {context._timeout:.2f} seconds")
        response = json.dumps(result)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        errored = True
        # An exception that no handler could catch (the process dying) is what Lambda reports as
        # Runtime.ExitError; everything else keeps its own type, as the Python runtime does.
        error_type = type(exc).__name__ if isinstance(exc, Exception) else "Runtime.ExitError"
        if isinstance(exc, _TimedOut):
            error_type = "Sandbox.Timedout"
        if not isinstance(exc, Exception):
            code.module = None  # a dead runtime's environment is not reused: the next call starts cold
        response = json.dumps(
            {
                "errorType": error_type,
                "errorMessage": str(exc),
                "stackTrace": traceback.format_exception(exc)[-5:],
            }
        )
        buffer.write(f"[ERROR] {type(exc).__name__}: {exc}\n")
    finally:
        _capture.buffer = None
    logs = buffer.getvalue()
    used = meter.current()
    if used is not None and context is not None:  # what Lambda bills: the duration by the ms, at MemorySize
        seconds = context._timeout - context.get_remaining_time_in_millis() / 1000
        used.add_invocation(function.function_name, context.memory_limit_in_mb, seconds, len(logs.encode()))
    if logs:
        function.logs_backend.ensure_log_group(function.logs_group_name)
        function.save_logs(logs)
    return response, errored, logs


def install() -> None:
    """Patch moto once per process; stdout gets the per-thread capture."""
    global _installed
    if _installed:
        return
    from moto.awslambda.models import LambdaFunction

    LambdaFunction._invoke_lambda = _invoke_in_process  # type: ignore[method-assign]
    clock.set_sleep_hook(_sleep_between_turns)
    _separate_powertools_providers()
    _installed = True
