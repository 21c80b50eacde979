"""Reading a synthesized CloudFormation template: the built stack next to its template, and helpers to
follow Ref / Fn::GetAtt and collect a role's policy statements."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
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


def synth_with_context(root: Path, **context: str) -> dict[str, Any]:
    """The template of `cdk synth -c key=value ...` (on top of cdk.json's context), built under `root` with
    empty dependency layers; the synth raises on any unacknowledged cdk-nag finding."""
    from infra.app import build_app, project_context

    layer_dirs: dict[resources.DependencyLayer, Path] = {}
    for layer in resources.DependencyLayer:
        (root / "layers" / layer.value / "python").mkdir(parents=True)
        layer_dirs[layer] = root / "layers" / layer.value
    app, stack = build_app(
        dependency_layer_dirs=layer_dirs, outdir=str(root / "cdk.out"), context={**project_context(), **context}
    )
    app.synth()
    template: dict[str, Any] = json.loads((root / "cdk.out" / stack.template_file).read_text())
    return template


def function_specs() -> list[Any]:
    return [pytest.param(spec, id=spec.name) for spec in resources.FUNCTIONS]


_SUB_REFERENCE = re.compile(r"\$\{([A-Za-z0-9]+)(?:\.[A-Za-z0-9.]+)?\}")


def _dependencies(value: Any, logical_ids: set[str]) -> set[str]:
    """Resources an expression makes CloudFormation create first: Ref, Fn::GetAtt and Fn::Sub names."""
    found = {target for target, _ in references(value)}
    if isinstance(value, dict) and "Fn::Sub" in value:
        template = value["Fn::Sub"][0] if isinstance(value["Fn::Sub"], list) else value["Fn::Sub"]
        found |= set(_SUB_REFERENCE.findall(template))
    if isinstance(value, dict):
        for inner in value.values():
            found |= _dependencies(inner, logical_ids)
    elif isinstance(value, list):
        for inner in value:
            found |= _dependencies(inner, logical_ids)
    return found & logical_ids


def dependency_graph(template: dict[str, Any]) -> dict[str, set[str]]:
    """Logical id -> the logical ids CloudFormation must create before it (references and DependsOn)."""
    resources_ = template["Resources"]
    ids = set(resources_)
    graph: dict[str, set[str]] = {}
    for logical_id, resource in resources_.items():
        depends = set(as_list(resource.get("DependsOn", [])))
        graph[logical_id] = (_dependencies(resource.get("Properties", {}), ids) | depends) & ids
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One dependency cycle (CloudFormation refuses the template: "Circular dependency"), or None."""
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(graph, white)
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        colour[node] = grey
        stack.append(node)
        for nxt in sorted(graph[node]):
            if colour[nxt] == grey:
                return [*stack[stack.index(nxt) :], nxt]
            if colour[nxt] == white and (cycle := visit(nxt)) is not None:
                return cycle
        stack.pop()
        colour[node] = black
        return None

    for node in sorted(graph):
        if colour[node] == white and (cycle := visit(node)) is not None:
            return cycle
    return None


def render(value: Any, refs: dict[str, str]) -> str:
    """A string expression (Fn::Join of literals, Ref, Fn::GetAtt) with each reference replaced from
    `refs` (keys: "AWS::Region", a logical id, or "<logical id>.<attribute>"); KeyError if one is missing."""
    if isinstance(value, str):
        return value
    if "Ref" in value:
        return refs[value["Ref"]]
    if "Fn::GetAtt" in value:
        target, attribute = value["Fn::GetAtt"]
        return refs[f"{target}.{attribute}"]
    if "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return str(separator).join(render(part, refs) for part in parts)
    raise ValueError(f"cannot render {value!r}")
