"""GET /portal, GET /console and GET /portal/assets/{asset}: the tenant portal, the operator console and
their bundled scripts and stylesheet (billing_platform.portal.pages), from this function's `static/`
folder, which `make setup` builds from web/ (esbuild)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from billing_platform.portal.pages import StaticPages

pages = StaticPages(Path(__file__).parent / "static")


def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    asset = (event.get("pathParameters") or {}).get("asset")
    if asset is not None:
        return pages.asset(asset)
    return pages.page(str(event.get("resource") or event.get("path") or ""))
