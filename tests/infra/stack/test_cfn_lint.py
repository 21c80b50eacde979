"""cfn-lint (the CloudFormation linter, AWS's resource specifications and rules) finds no error in the
template the CDK app synthesizes: what CloudFormation would refuse at deploy time (an unknown property, a
value of the wrong type or outside the allowed ones, a reference to nothing) fails `make test` instead.
Warnings are not failures: CDK's own output carries W3005 (a DependsOn already implied by a Ref)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from tests.infra.cfn import Synthesized

pytestmark = [pytest.mark.infra, pytest.mark.xdist_group("infra")]

REGION = "us-east-1"


def lint_errors(template: dict[str, Any]) -> list[str]:
    """cfn-lint's error-level findings on `template`, one readable line each (rule, path, message)."""
    from cfnlint.api import lint

    matches = lint(json.dumps(template), regions=[REGION])
    return [
        f"{m.rule.id} {'/'.join(str(p) for p in m.path)}: {m.message}"
        for m in matches
        if m.rule.severity.lower() == "error"
    ]


def test_synthesized_template_has_no_cfn_lint_error(synthesized: Synthesized) -> None:
    errors = lint_errors(synthesized.template)
    assert errors == [], "\n".join(errors)


def test_cfn_lint_reports_a_broken_property(synthesized: Synthesized) -> None:
    # The check above could pass by linting nothing: the same template with one property CloudFormation
    # does not know on a Lambda function must fail it.
    broken = copy.deepcopy(synthesized.template)
    logical_id, function = next((k, r) for k, r in broken["Resources"].items() if r["Type"] == "AWS::Lambda::Function")
    function["Properties"]["MemorySizeInGigabytes"] = 1
    errors = lint_errors(broken)
    assert any(e.startswith("E3002 ") and logical_id in e and "MemorySizeInGigabytes" in e for e in errors), errors


def test_cfn_lint_reports_a_value_of_the_wrong_type(synthesized: Synthesized) -> None:
    broken = copy.deepcopy(synthesized.template)
    queue_id, queue = next((k, r) for k, r in broken["Resources"].items() if r["Type"] == "AWS::SQS::Queue")
    queue["Properties"]["VisibilityTimeout"] = "a long time"
    errors = lint_errors(broken)
    assert any(queue_id in e and "VisibilityTimeout" in e for e in errors), errors
