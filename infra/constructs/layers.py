"""Lambda layers: the platform's own library (layers/core) and the pip-built dependency layers."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from aws_cdk import RemovalPolicy
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from billing_platform.resources import DependencyLayer, FunctionSpec

# Asset exclusions: bytecode and the editable install's metadata never reach Lambda.
ASSET_EXCLUDE = ["**/__pycache__", "**/*.pyc", "**/*.egg-info", "**/.mypy_cache", "**/.pytest_cache"]


class Layers(Construct):
    """`core_library` holds python/billing_platform; `dependencies[layer]` holds the third-party packages
    of resources.DependencyLayer, built by infra.dependency_layers from layers/deps/<name>.txt."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        runtime: lambda_.Runtime,
        core_library_dir: Path,
        dependency_dirs: Mapping[DependencyLayer, Path],
    ) -> None:
        super().__init__(scope, construct_id)
        self._runtime = runtime
        self.core_library = self._layer(
            "CoreLibrary",
            lambda_.Code.from_asset(str(core_library_dir), exclude=ASSET_EXCLUDE),
            "billing_platform: services, repositories, providers, models",
        )
        self.dependencies: dict[DependencyLayer, lambda_.LayerVersion] = {
            layer: self._layer(
                f"{layer.value.capitalize()}Dependencies",
                lambda_.Code.from_asset(str(dependency_dirs[layer]), exclude=[".requirements.sha256"]),
                f"Pinned third-party packages from layers/deps/{layer.value}.txt",
            )
            for layer in DependencyLayer
        }

    def _layer(self, construct_id: str, code: lambda_.Code, description: str) -> lambda_.LayerVersion:
        return lambda_.LayerVersion(
            self,
            construct_id,
            code=code,
            description=description,
            compatible_runtimes=[self._runtime],
            compatible_architectures=[lambda_.Architecture.X86_64],
            # Old versions stay so a rollback of the stack still finds the layer it pointed at.
            removal_policy=RemovalPolicy.RETAIN,
        )

    def for_function(self, spec: FunctionSpec) -> list[lambda_.ILayerVersion]:
        """The spec's dependency layers and the library. The order carries no meaning: with
        `@aws-cdk/aws-lambda:recognizeLayerVersion` CDK sorts a function's layers, so layers must not
        disagree on a file (packages repeated in two requirements files are pinned to the same version,
        which tests/infra checks)."""
        return [*(self.dependencies[layer] for layer in spec.dependency_layers), self.core_library]
