"""The CDK app, built and synthesized once per test session (jsii starts a Node process: ~4 s per app).

The dependency layers are empty folders here, so the tests never run pip. The app is synthesized with
cdk-nag's validation plugin registered, exactly as `cdk synth` runs it; a validation failure is kept
for test_nag (the template is still written, so the other tests read it either way). Every infra test
module carries `xdist_group("infra")` so one xdist worker builds the app once.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from billing_platform.resources import DependencyLayer
from tests.infra.cfn import Synthesized


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    from infra.app import build_app, project_context

    root = tmp_path_factory.mktemp("cdk")
    layer_dirs: dict[DependencyLayer, Path] = {}
    for layer in DependencyLayer:
        (root / "layers" / layer.value / "python").mkdir(parents=True)
        layer_dirs[layer] = root / "layers" / layer.value
    outdir = root / "cdk.out"
    # cdk.json's feature flags, as the CLI passes them: the tests check the template `cdk synth` makes.
    app, stack = build_app(dependency_layer_dirs=layer_dirs, outdir=str(outdir), context=project_context())
    error: Exception | None = None
    try:
        app.synth()
    except Exception as exc:  # jsii surfaces ValidationFailed as a plain exception
        error = exc
    template = json.loads((outdir / stack.template_file).read_text())
    report_file = outdir / "validation-report.json"
    report = json.loads(report_file.read_text()) if report_file.exists() else {}
    return Synthesized(app, stack, template, error, report)


@pytest.fixture(scope="session")
def template(synthesized: Synthesized) -> Any:
    from aws_cdk.assertions import Template

    return Template.from_json(synthesized.template)
