"""cdk-nag 3.x wiring: AwsSolutions checks as a validation plugin, and acknowledgments with reasons."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Validations
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct


def add_checks(app: IConstruct) -> AwsSolutionsChecks:
    """Run AwsSolutions on every synth; any unacknowledged finding (error or warning) fails the synth.
    cdk-nag 3 is a validation plugin: `Aspects.of(app).add(...)` fails with "aspect.visit is not a function"."""
    checks = AwsSolutionsChecks(app, write_suppressions_to_cloud_formation=True)
    Validations.of(app).add_plugins(checks)
    return checks


def acknowledge(scope: IConstruct, rule_id: str, reason: str) -> None:
    """Acknowledge one finding on `scope` and its children. `rule_id` is exact (cdk-nag 3 has no prefix
    matching), e.g. "AwsSolutions-IAM5[Resource::*]". The reason is written into the template."""
    if len(reason) < 20:
        raise ValueError(f"acknowledging {rule_id} needs a real reason, got {reason!r}")
    Validations.of(scope).acknowledge(Acknowledgment(id=rule_id, reason=reason))
