"""The one way functions make their logger. Light on purpose (the authorizer uses it too).

Every logger redacts credentials before a record is written: bearer tokens anywhere in a message
or its extra fields, and the values of fields named like credentials. Powertools can log whole
events (POWERTOOLS_LOGGER_LOG_EVENT=true), and an API Gateway event carries the caller's key.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from aws_lambda_powertools import Logger

SERVICE = "imagejobs"
REDACTED = "[redacted]"
BEARER = re.compile(r"(?i)\b(bearer\s+)[^\s\"',;}\]]+")
SECRET_FIELDS = frozenset({"authorization", "authorizationtoken", "x-api-key", "api_key", "secret", "webhook_secret"})
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def redact(value: Any, depth: int = 0) -> Any:
    if depth > 20:
        return value
    if isinstance(value, str):
        return BEARER.sub(lambda m: m.group(1) + REDACTED, value)
    if isinstance(value, dict):
        return {k: REDACTED if str(k).lower() in SECRET_FIELDS else redact(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact(v, depth + 1) for v in value)
    return value


class RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.msg)
        if isinstance(record.args, dict | tuple):
            record.args = redact(record.args)
        for name, value in list(record.__dict__.items()):
            if name not in _STANDARD:
                record.__dict__[name] = REDACTED if name.lower() in SECRET_FIELDS else redact(value)
        return True


def make_logger(function: str) -> Logger:
    logger = Logger(service=SERVICE, function_role=function)
    logger.addFilter(RedactSecrets())
    return logger
