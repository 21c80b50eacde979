"""billing_platform.deferred_imports: Powertools' event handler and data class packages load only the
submodules a name comes from, and every name those packages export stays importable. Each case runs in a
fresh interpreter (this process imported Powertools long ago)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from billing_platform.deferred_imports import _exports
from tests.factories.cold_start import LAYER_DIR


def _fresh(code: str) -> object:
    """Run `code` (which sets `answer`) after `import billing_platform`, as a handler does; its JSON."""
    program = f"import json, sys\nimport billing_platform\n{code}\nprint(json.dumps(answer))"
    done = subprocess.run(
        [sys.executable, "-c", program],
        env={"PYTHONPATH": str(LAYER_DIR), "POWERTOOLS_TRACE_DISABLED": "true", "PATH": ""},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_rest_resolver_loads_no_other_resolver_nor_every_event_class() -> None:
    answer = _fresh(
        "from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types\n"
        "from aws_lambda_powertools.event_handler.openapi.params import Path\n"
        "answer = sorted(m for m in ('aws_lambda_powertools.event_handler.appsync', 'asyncio',\n"
        "    'aws_lambda_powertools.event_handler.bedrock_agent',\n"
        "    'aws_lambda_powertools.utilities.data_classes.code_pipeline_job_event') if m in sys.modules)"
    )
    assert answer == []


def test_every_exported_name_still_resolves_to_the_real_object() -> None:
    # Names asked for one by one (lazily), then the same names as a star import would see them: both
    # must match what the packages' own __init__ defines.
    answer = _fresh(
        "import importlib\n"
        "checked = {}\n"
        "for pkg in ('aws_lambda_powertools.event_handler', 'aws_lambda_powertools.utilities.data_classes'):\n"
        "    module = importlib.import_module(pkg)\n"
        "    real = {'__name__': pkg, '__package__': pkg}\n"
        "    exec(open(module.__spec__.origin).read(), real)  # the package's own __init__, run aside\n"
        "    names = real['__all__']\n"
        "    checked[pkg] = [n for n in names if getattr(module, n) is not real[n]]\n"
        "answer = checked"
    )
    assert answer == {
        "aws_lambda_powertools.event_handler": [],
        "aws_lambda_powertools.utilities.data_classes": [],
    }


def test_star_import_and_submodule_access_work() -> None:
    answer = _fresh(
        "from aws_lambda_powertools.utilities.data_classes import *\n"
        "import aws_lambda_powertools.event_handler as eh\n"
        "answer = [SQSEvent.__name__, eh.content_types.APPLICATION_JSON, eh.middlewares.__name__]"
    )
    assert answer == ["SQSEvent", "application/json", "aws_lambda_powertools.event_handler.middlewares"]


def test_an_unknown_name_runs_the_real_init_then_fails_as_usual() -> None:
    answer = _fresh(
        "import aws_lambda_powertools.event_handler as eh\n"
        "try:\n"
        "    eh.NoSuchResolver\n"
        "    answer = 'found'\n"
        "except AttributeError:\n"
        "    answer = 'appsync loaded' if 'aws_lambda_powertools.event_handler.appsync' in sys.modules else 'x'"
    )
    assert answer == "appsync loaded"


@pytest.mark.parametrize(
    "source",
    [
        "from .a import b\nset_up_logging()\n",  # code that must run at import
        "from .a import *\n",  # names unknown until run
        "from .a import b\nX = compute()\n",
    ],
)
def test_an_init_with_code_of_its_own_is_not_deferred(source: str) -> None:
    assert _exports(source, "pkg.sub") is None


def test_exports_resolve_relative_imports() -> None:
    found = _exports(
        '"""doc"""\nfrom __future__ import annotations\nfrom .a import B as C\n'
        "from ..d import E\n__all__ = ['C', 'E']\n",
        "pkg.sub",
    )
    assert found == ({"C": ("pkg.sub.a", "B"), "E": ("pkg.d", "E")}, ["C", "E"])


def test_a_submodule_imported_from_the_package_itself_is_served_as_a_submodule() -> None:
    # `from . import sub` in an __init__: the name resolves through the submodule branch (no self-lookup).
    assert _exports("from . import sub\nfrom .a import B\n", "pkg") == ({"B": ("pkg.a", "B")}, None)
