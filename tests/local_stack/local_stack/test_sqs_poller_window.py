"""The local stack's SQS poller gathers a batch for the event source's batching window without spinning:
against a real queue (moto), one message and a 2 s window take a handful of ReceiveMessage calls (long
polls of whole seconds, then a sleep for the last fraction), not a tight loop of zero-wait receives."""

from __future__ import annotations

from typing import Any

import boto3

from billing_platform import resources
from local_stack.pollers import SqsPoller

WINDOW_SECONDS = 2


def test_a_batching_window_is_waited_out_with_long_polls_not_a_busy_loop(moto_aws: dict[str, str]) -> None:
    sqs = boto3.client("sqs", region_name="us-east-1")
    url = moto_aws[resources.USAGE_QUEUE.env_var]
    receives: list[int] = []
    sqs.meta.events.register(
        "before-parameter-build.sqs.ReceiveMessage", lambda params, **_: receives.append(params["WaitTimeSeconds"])
    )
    delivered: list[dict[str, Any]] = []

    def invoke(name: str, event: dict[str, Any]) -> dict[str, Any]:
        delivered.extend(event["Records"])
        return {"batchItemFailures": []}

    poller = SqsPoller(
        sqs,
        queue_url=url,
        function=resources.USAGE_CONSUMER.name,
        invoke=invoke,
        batch_size=100,
        batching_window_seconds=WINDOW_SECONDS,
    )
    sqs.send_message(QueueUrl=url, MessageBody='{"v":1,"records":[]}')

    assert poller.poll_once() == 1
    assert [r["body"] for r in delivered] == ['{"v":1,"records":[]}']
    # The first receive finds the message; at most one long poll per second of the window follows, then
    # one zero-wait receive after sleeping the fraction left. Before: hundreds of zero-wait receives.
    assert len(receives) <= WINDOW_SECONDS + 2, receives
    assert receives.count(0) <= 1, receives
    assert (
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"][
            "ApproximateNumberOfMessages"
        ]
        == "0"
    )
