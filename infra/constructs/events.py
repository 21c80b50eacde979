"""The billing event bus (resources.EVENT_BUS): tenants' events (quota thresholds, grants) go here, an archive
keeps them for replay, and each rule of the spec forwards its detail-types to its SQS queue (the webhook
delivery queue).

Webhook delivery is a Lambda on that queue rather than EventBridge API destinations: a destination can
authenticate (basic, API key, OAuth) but not sign each body with a per-endpoint HMAC secret (Stripe's
scheme), endpoints are registered per tenant at run time (a connection + destination + rule each, against
account quotas), and a destination gives up after 24 h of retries with no per-endpoint record of what was
delivered. The queue gives the backoff (visibility per message), the DLQ and per-endpoint dedupe."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from constructs import Construct

from billing_platform.resources import EventBusSpec
from infra.constructs.data import Data


class BillingEvents(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, spec: EventBusSpec, data: Data, removal_policy: RemovalPolicy
    ) -> None:
        super().__init__(scope, construct_id)
        self.spec = spec
        self.bus = events.EventBus(self, spec.logical_id, description="Billing events tenants subscribe to")
        self.archive = self.bus.archive(
            "Archive",
            description="Every billing event, for replay",
            event_pattern=events.EventPattern(source=[spec.source]),
            retention=Duration.days(spec.archive_retention_days),
        )
        self.archive.apply_removal_policy(removal_policy)
        self.rules: dict[str, events.Rule] = {}
        for rule in spec.rules:
            queue = data.queue(rule.queue)
            self.rules[rule.logical_id] = events.Rule(
                self,
                rule.logical_id,
                event_bus=self.bus,
                description=f"{', '.join(rule.detail_types)} -> {rule.queue.local_name}",
                event_pattern=events.EventPattern(source=[spec.source], detail_type=list(rule.detail_types)),
                # Events SQS refuses (never expected: encrypted with SQS-managed keys) land in the queue's DLQ.
                targets=[
                    targets.SqsQueue(
                        queue,
                        dead_letter_queue=data.dead_letter_queue(rule.queue),
                        retry_attempts=185,
                        max_event_age=Duration.hours(24),
                    )
                ],
            )

    def grant_publish(self, grantee: iam.IGrantable) -> None:
        """events:PutEvents on this bus only."""
        self.bus.grant_put_events_to(grantee)
