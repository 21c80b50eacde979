"""CDK entry point (`cdk.json`: `.venv/bin/python -m infra.app`). Synthesizes offline: no credentials,
no Docker, no lookups. Dependency layers are built with pip first when missing or stale.

Context (`-c key=value`): `stackName` (default BillingPlatform), `environment` (default production),
`retainData` (default true), `requireApiKeys` (default true: tenant routes require the tenant's
usage-plan key, which the authorizer names, so the per-tenant usage plan throttles each tenant; a stack
whose tenant keys were created before the plan existed runs `python -m infra.usage_plan_backfill` once),
`waf` (default true: a regional WAF web ACL on the API stage, infra.constructs.waf), `xraySdk` (default false:
Lambda's active tracing records each invocation, its init and API Gateway's hop; true also loads the X-Ray SDK
in every function for a subsegment per AWS call and traced method, at a large cost to every cold start).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import aws_cdk as cdk

from billing_platform.resources import DependencyLayer
from infra import dependency_layers
from infra.nag import add_checks
from infra.stack import BillingStack

ROOT = Path(__file__).resolve().parent.parent


def project_context() -> dict[str, object]:
    """The `context` of cdk.json (feature flags). The CLI hands it to the app itself; an app built from
    Python (the infra tests) passes it explicitly so both synthesize the same template."""
    return dict(json.loads((ROOT / "cdk.json").read_text()).get("context", {}))


def _flag(app: cdk.App, key: str, default: bool) -> bool:
    value = app.node.try_get_context(key)
    return default if value is None else str(value).lower() in ("1", "true", "yes")


def build_app(
    *,
    dependency_layer_dirs: Mapping[DependencyLayer, Path] | None = None,
    outdir: str | None = None,
    context: Mapping[str, object] | None = None,
) -> tuple[cdk.App, BillingStack]:
    """The app with its one stack and cdk-nag's AwsSolutions checks registered (findings fail the synth)."""
    app = cdk.App(outdir=outdir, context=dict(context or {}))
    add_checks(app)
    dirs = dependency_layer_dirs if dependency_layer_dirs is not None else dependency_layers.ensure_built()
    stack = BillingStack(
        app,
        str(app.node.try_get_context("stackName") or "BillingPlatform"),
        dependency_layer_dirs=dirs,
        environment_name=str(app.node.try_get_context("environment") or "production"),
        retain_data=_flag(app, "retainData", True),
        require_api_keys=_flag(app, "requireApiKeys", True),
        waf=_flag(app, "waf", True),
        xray_sdk=_flag(app, "xraySdk", False),
        env=cdk.Environment(account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION")),
        description="Serverless SaaS billing: subscriptions, Stripe webhooks, atomic quotas, usage metering",
    )
    cdk.Tags.of(app).add("project", "aws-saas-billing")
    return app, stack


def main() -> None:
    app, _ = build_app()
    app.synth()


if __name__ == "__main__":
    main()
