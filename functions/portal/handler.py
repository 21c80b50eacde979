"""GET /portal, GET /console and GET /portal/assets/{asset}: the tenant portal, the operator console and
their bundled scripts and stylesheet (billing_platform.portal.pages), from this function's `static/`
folder, which `make setup` builds from web/ (esbuild). The platform's resolver serves them, so the body
limits and error bodies are the API's own."""

from __future__ import annotations

from pathlib import Path as FilePath
from typing import TYPE_CHECKING, Annotated, Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from billing_platform.api.app import ApiTag, Path, Response, create_app
from billing_platform.observability import logger, tracer
from billing_platform.portal.pages import ASSET_NAME_PATTERN, StaticPages

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse

app = create_app(title="Billing pages")
pages = StaticPages(FilePath(__file__).parent / "static")

AssetName = Annotated[str, Path(min_length=4, max_length=48, pattern=ASSET_NAME_PATTERN)]
HTML: dict[int, OpenAPIResponse] = {
    200: {"description": "The page (text/html)", "content": {"text/html": {"schema": {"type": "string"}}}}
}


def _respond(answer: dict[str, Any]) -> Response[str]:
    headers = dict(answer["headers"])
    return Response(
        status_code=answer["statusCode"],
        content_type=headers.pop("Content-Type"),
        body=answer["body"],
        headers=headers,
    )


@app.get(
    "/portal", summary="Serve the tenant portal page", operation_id="getPortalPage", tags=[ApiTag.PAGES], responses=HTML
)
def portal_page() -> Response[str]:
    return _respond(pages.page("/portal"))


@app.get(
    "/console",
    summary="Serve the operator console page",
    operation_id="getConsolePage",
    tags=[ApiTag.PAGES],
    responses=HTML,
)
def console_page() -> Response[str]:
    return _respond(pages.page("/console"))


@app.get(
    "/portal/assets/<asset>",
    summary="Serve a bundled script or stylesheet of the pages",
    operation_id="getPageAsset",
    tags=[ApiTag.PAGES],
)
def page_asset(asset: AssetName) -> Response[str]:
    return _respond(pages.asset(asset))


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId", clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
