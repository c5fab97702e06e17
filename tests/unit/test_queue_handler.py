"""A batch shares one invocation's timeout: a message is started only while there is time for it."""

from __future__ import annotations

from typing import Any

from imagejobs.adapters.observability import make_logger
from imagejobs.edge.queue_handler import queue_handler


class Context:
    """What Lambda passes: here a clock that runs down by `per_message` seconds per message."""

    function_name = "submit"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:submit"
    aws_request_id = "req-1"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def get_remaining_time_in_millis(self) -> int:
        return int(self.seconds * 1000)


def sqs_event(count: int) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": f"m{index}",
                "receiptHandle": f"r{index}",
                "body": f'{{"job_id": "img_{index}"}}',
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:submit",
                "awsRegion": "us-east-1",
                "md5OfBody": "",
            }
            for index in range(count)
        ]
    }


def test_messages_without_time_for_them_go_back_at_once_untouched() -> None:
    context = Context(seconds=150)
    processed: list[str] = []
    released: list[str] = []

    def process(body: str, **_: Any) -> str:
        processed.append(body)
        context.seconds -= 60  # each message took a whole provider timeout and more
        return "submitted"

    handler = queue_handler(make_logger("test"), process, reserve_seconds=65, release=released.append)

    answer = handler(sqs_event(4), context)  # type: ignore[arg-type]  # a LambdaContext's duck

    # 150 s: the first two start (150, 90 left), the third finds 30 s < 65 s: it and the fourth go back
    assert len(processed) == 2
    assert released == ["r2", "r3"]
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m2"}, {"itemIdentifier": "m3"}]}


def test_with_time_enough_every_message_is_processed() -> None:
    processed: list[str] = []

    def process(body: str, **_: Any) -> str:
        processed.append(body)
        return "submitted"

    handler = queue_handler(make_logger("test"), process, reserve_seconds=65, release=lambda _: None)
    assert handler(sqs_event(10), Context(seconds=150)) == {"batchItemFailures": []}  # type: ignore[arg-type]  # a LambdaContext's duck
    assert len(processed) == 10


def test_a_message_that_fails_comes_back_alone_and_every_failure_is_named() -> None:
    processed: list[str] = []

    def process(body: str, **delivery: Any) -> str:
        if "img_1" in body:
            raise RuntimeError("the store is down")
        processed.append(f"{body} #{delivery['receive_count']}")
        return "submitted"

    handler = queue_handler(make_logger("test"), process)
    answer = handler(sqs_event(3), Context(seconds=150))  # type: ignore[arg-type]  # a LambdaContext's duck
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    assert processed == ['{"job_id": "img_0"} #1', '{"job_id": "img_2"} #1']

    def broken(body: str, **_: Any) -> str:
        raise RuntimeError("everything is down")

    # All failed: named all the same (Lambda puts back exactly the messages named), not raised.
    answer = queue_handler(make_logger("test"), broken)(sqs_event(2), Context(seconds=150))  # type: ignore[arg-type]
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m0"}, {"itemIdentifier": "m1"}]}
