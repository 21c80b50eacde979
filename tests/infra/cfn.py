"""Reading a synthesized CloudFormation template: the built stack next to its template, and helpers to
follow Ref / Fn::GetAtt and collect a role's policy statements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from billing_platform import resources
from billing_platform.resources import FunctionSpec, QueueSpec, TableSpec


@dataclass
class Synthesized:
    """The built stack, its template as a dict, and what the validation plugins reported."""

    app: Any
    stack: Any
    template: dict[str, Any]
    validation_error: Exception | None
    validation_report: dict[str, Any]

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return dict(self.template["Resources"])

    def of_type(self, cfn_type: str) -> dict[str, dict[str, Any]]:
        return {k: r for k, r in self.template["Resources"].items() if r["Type"] == cfn_type}

    def logical_id(self, construct: Any) -> str:
        """The logical id of an L2 construct's CloudFormation resource."""
        return str(self.stack.resolve(self.stack.get_logical_id(construct.node.default_child)))

    def function_id(self, spec: FunctionSpec) -> str:
        return self.logical_id(self.stack.functions[spec])

    def role_id(self, spec: FunctionSpec) -> str:
        return self.logical_id(self.stack.functions[spec].role)

    def table_id(self, spec: TableSpec) -> str:
        return self.logical_id(self.stack.data.table(spec))

    def queue_id(self, spec: QueueSpec) -> str:
        return self.logical_id(self.stack.data.queue(spec))

    def dlq_id(self, spec: QueueSpec) -> str:
        return self.logical_id(self.stack.data.dead_letter_queue(spec))


def references(value: Any) -> set[tuple[str, str]]:
    """Every (logical id, attribute) a CloudFormation expression points at: `Ref` gives attribute "Ref"."""
    found: set[tuple[str, str]] = set()
    if isinstance(value, dict):
        if "Ref" in value and isinstance(value["Ref"], str):
            found.add((value["Ref"], "Ref"))
        if "Fn::GetAtt" in value:
            target, attribute = value["Fn::GetAtt"]
            found.add((target, attribute))
        for inner in value.values():
            found |= references(inner)
    elif isinstance(value, list):
        for inner in value:
            found |= references(inner)
    return found


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def statements_of_role(synthesized: Synthesized, role_id: str) -> list[dict[str, Any]]:
    """Every identity-policy statement attached to a role: inline policies, AWS::IAM::Policy resources."""
    role = synthesized.resources[role_id]
    statements: list[dict[str, Any]] = []
    for policy in role["Properties"].get("Policies", []):
        statements.extend(as_list(policy["PolicyDocument"]["Statement"]))
    for policy in synthesized.of_type("AWS::IAM::Policy").values():
        if {"Ref": role_id} in policy["Properties"].get("Roles", []):
            statements.extend(as_list(policy["Properties"]["PolicyDocument"]["Statement"]))
    return statements


def function_specs() -> list[Any]:
    return [pytest.param(spec, id=spec.name) for spec in resources.FUNCTIONS]
