"""What each function's cold start loads: its handler module imported in a fresh interpreter, in the
environment the stack gives it (tests/factories/cold_start.py). Not a timing: a module list, so it fails
the same way on any machine when an import creeps onto a cold path.

- Every third-party module a handler loads ships in one of that function's dependency layers
  (layers/deps/*.txt): otherwise it is missing on Lambda, or it is a dev-only package (fastapi, moto ...).
- Modules that no function needs at import: the X-Ray SDK with tracing off (the stack's default), Powertools'
  OpenAPI document models (only /openapi.json needs them), the CLI, the local stack, tests.
- No AWS client is created at import: the first request builds the clients it uses.
"""

from __future__ import annotations

import importlib.metadata
import json
import sys
from functools import cache

import pytest

from billing_platform import resources
from billing_platform.resources import FunctionSpec
from infra.dependency_layers import pinned_versions, requirements_file
from tests.factories.cold_start import Footprint, cold_import_footprint, run_fresh

# Never on a Lambda import path, whatever the function: dev tools, the operator CLI, the local system.
DENIED_EVERYWHERE = {
    "fastapi": "an ASGI framework: Lambda code answers API Gateway events through Powertools",
    "starlette": "pulled in by fastapi",
    "moto": "a test double of AWS",
    "pytest": "tests only",
    "aws_cdk": "infrastructure code",
    "local_stack": "the local system runs handlers, handlers never import it",
    "tests": "tests only",
    "billing_platform.cli": "the operator command line",
    "boto3": "billing_platform.clients makes botocore clients: boto3's resource layer is ~15 ms unused",
    "s3transfer": "boto3's S3 transfer manager",
    # ~50 ms of pydantic models that only the /openapi.json document needs (built on that request).
    "aws_lambda_powertools.event_handler.openapi.models": "the OpenAPI document's models",
}
# The stack turns the X-Ray SDK off by default (resources.FUNCTION_ENVIRONMENT): Lambda's active tracing
# records the invocation without it.
# API functions take Powertools' route vocabulary through billing_platform.api.app, after
# billing_platform.deferred_imports is in place: they load the REST resolver and the event classes it uses,
# not the package __init__s that import every resolver and every event class (~25 ms of CPU).
DENIED_IN_API_FUNCTIONS = {
    "aws_lambda_powertools.event_handler.appsync": "the AppSync resolver (Powertools' event_handler __init__)",
    "aws_lambda_powertools.event_handler.bedrock_agent": "the Bedrock agent resolver (same __init__)",
    "aws_lambda_powertools.utilities.data_classes.code_pipeline_job_event": "every event class (data_classes __init__)",
    # Only the library's async faces need an event loop (billing_platform.offload imports it on use).
    "asyncio": "the event loop, ~7 ms: Lambda handlers call the blocking faces",
}
DENIED_WITHOUT_XRAY_SDK = {
    "aws_xray_sdk": "the X-Ray SDK, with tracing off",
    "wrapt": "the X-Ray SDK's patching",
}
# No function loads the Stripe SDK at import (~45 ms with requests): the webhook checks signatures with the
# standard library (providers.stripe_signature) and reaches its provider through ProviderOnCall; the
# webhook, the subscription API and the meter reporter import the SDK on their first Stripe call. The
# functions without the stripe layer never call Stripe at all.
DENIED_STRIPE_AT_IMPORT = {
    "stripe": "the Stripe SDK: imported by the first Stripe call, if any",
    "requests": "stripe's HTTP client",
}

# Optional imports of shipped packages, satisfied in the dev venv and skipped on Lambda.
OPTIONAL_IMPORTS = {
    "certifi": "botocore uses certifi's CA bundle when installed, its own otherwise",
    # stripe imports httpx and anyio when installed (its async HTTP client; the dev venv has httpx for
    # FastAPI's TestClient), and httpx its command line's libraries; the stripe layer ships none of them.
    "httpx": "stripe's optional async HTTP client",
    "anyio": "stripe's optional async HTTP client",
    "click": "imported by httpx",
    "rich": "imported by httpx",
    "pygments": "imported by httpx",
}

FUNCTION_IDS = [spec.name for spec in resources.FUNCTIONS]


def _normalize(name: str) -> str:
    return name.replace("_", "-").replace(".", "-").lower()


@cache
def _footprint(name: str, xray_sdk: bool = False) -> Footprint:
    spec = next(spec for spec in resources.FUNCTIONS if spec.name == name)
    return cold_import_footprint(spec, xray_sdk=xray_sdk)


def _spec(name: str) -> FunctionSpec:
    return next(spec for spec in resources.FUNCTIONS if spec.name == name)


def _third_party_distributions(modules: frozenset[str]) -> dict[str, set[str]]:
    """Top-level module -> the installed distributions providing it, for modules outside the standard
    library, the layer (billing_platform) and the function's own folder (handler)."""
    providers = importlib.metadata.packages_distributions()
    found: dict[str, set[str]] = {}
    for module in modules:
        top = module.split(".", 1)[0]
        if top in sys.stdlib_module_names or top in ("billing_platform", "handler", "__main__") or top in found:
            continue
        if top not in providers or top in OPTIONAL_IMPORTS:
            continue  # a built-in or frozen module without distribution metadata
        found[top] = {_normalize(name) for name in providers[top]}
    return found


def _loaded(modules: frozenset[str], denied: dict[str, str]) -> dict[str, str]:
    return {name: why for name, why in denied.items() if any(m == name or m.startswith(f"{name}.") for m in modules)}


@pytest.mark.parametrize("name", FUNCTION_IDS)
def test_handler_imports_only_what_its_layers_ship(name: str) -> None:
    spec = _spec(name)
    shipped = {
        _normalize(dist) for layer in spec.dependency_layers for dist in pinned_versions(requirements_file(layer))
    }
    missing = {
        module: sorted(dists)
        for module, dists in _third_party_distributions(_footprint(name).modules).items()
        if not dists & shipped
    }
    assert missing == {}, f"{name} imports modules its layers {spec.dependency_layers} do not ship"


@pytest.mark.parametrize("name", FUNCTION_IDS)
def test_handler_import_loads_nothing_on_the_deny_list(name: str) -> None:
    denied = {**DENIED_EVERYWHERE, **DENIED_WITHOUT_XRAY_SDK, **DENIED_STRIPE_AT_IMPORT}
    if _spec(name).routes:
        denied.update(DENIED_IN_API_FUNCTIONS)
    assert _loaded(_footprint(name).modules, denied) == {}


@pytest.mark.parametrize("name", FUNCTION_IDS)
def test_handler_import_creates_no_aws_client(name: str) -> None:
    # A client costs ~50 ms of CPU to build; a handler builds the ones it uses on its first request.
    assert _footprint(name).clients_created == []


def test_with_the_xray_sdk_on_every_handler_is_traced() -> None:
    # Tracing stays available: with the CDK context xraySdk=true the Tracer (and the SDK) load at import.
    for name in (resources.HEALTH.name, resources.ENTITLEMENTS.name, resources.AUTHORIZER.name):
        modules = _footprint(name, xray_sdk=True).modules
        assert "aws_xray_sdk.core" in modules, name


def test_the_webhook_leaves_the_subscription_api_models_unbuilt() -> None:
    # defer_build on the subscription API's models: the webhook imports their module (for its own answer)
    # but never uses them.
    code = (
        "import json, handler\nfrom billing_platform.subscriptions import schemas\n"
        "print(json.dumps({n: getattr(schemas, n).__pydantic_complete__ for n in schemas.API_MODELS}))"
    )
    built = json.loads(run_fresh(resources.STRIPE_WEBHOOK, code))
    assert len(built) == 5
    assert built == dict.fromkeys(built, False)


def test_the_subscription_api_models_still_validate_when_first_used() -> None:
    code = (
        "import json\nfrom billing_platform.subscriptions import schemas\n"
        "try:\n    schemas.CreateCustomerRequest.model_validate({'tenant_id': 't_1', 'email': 'x', 'extra': 1})\n"
        "except Exception as exc:\n    print(json.dumps(sorted(e['type'] for e in exc.errors())))"
    )
    assert json.loads(run_fresh(resources.SUBSCRIPTIONS, code)) == ["extra_forbidden", "string_pattern_mismatch"]
