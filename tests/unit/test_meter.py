"""The offline meter's DynamoDB sizes and Step Functions transitions, against AWS's own rules
and examples ("DynamoDB item sizes and formats", "read and write operations"; Step Functions
pricing: every state entered, and every retry, is a transition)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from imagejobs_local import meter


def test_item_sizes_follow_the_documented_rules() -> None:
    # a string: name bytes + UTF-8 bytes; a number: name + 1 byte per 2 significant digits + 1
    assert meter.item_size({"id": {"S": "job-1"}}) == 2 + 5
    assert meter.item_size({"n": {"N": "12345"}}) == 1 + 3 + 1
    assert meter.item_size({"n": {"N": "1200"}}) == 1 + 1 + 1  # trailing zeroes trimmed
    assert meter.item_size({"é": {"S": "ü"}}) == 2 + 2  # UTF-8 bytes, not characters
    # a map: 3 bytes + per element (1 byte + name + value)
    assert meter.item_size({"m": {"M": {"a": {"BOOL": True}}}}) == 1 + 3 + 1 + 1 + 1
    # a boto3 resource's plain values count the same as AttributeValues
    assert meter.item_size({"id": "job-1", "n": Decimal(12345)}) == meter.item_size(
        {"id": {"S": "job-1"}, "n": {"N": "12345"}}
    )


def test_units_round_up_as_aws_says() -> None:
    assert meter._write_units(1) == 1 and meter._write_units(1025) == 2  # writes: per 1 KB
    assert meter._read_units(3500, consistent=True) == 1.0  # "a 3,500-byte item ... as a 4 KB item"
    assert meter._read_units(8 * 1024, consistent=False) == 1.0  # 8 KB eventually consistent: 1 unit


class History:
    def __init__(self, events: list[str]) -> None:
        self.events = events

    def get_paginator(self, name: str) -> Any:
        events = self.events

        class Pages:
            def paginate(self, **kwargs: Any) -> list[dict[str, Any]]:
                return [{"events": [{"type": kind} for kind in events]}]

        return Pages()


def test_transitions_count_states_entered_and_retries() -> None:
    history = History(
        [
            "ExecutionStarted",
            "WaitStateEntered",
            "WaitStateExited",
            "TaskStateEntered",
            "TaskScheduled",
            "TaskFailed",
            "TaskScheduled",
            "TaskSucceeded",
            "TaskStateExited",
            "ChoiceStateEntered",
            "ChoiceStateExited",
            "SucceedStateEntered",
            "ExecutionSucceeded",
        ]
    )
    assert meter.transitions(history, "arn") == 4 + 1  # four states, one retry
