"""The local gateway authorizes operator routes signed with SigV4 as the deployed API's IAM authorization
does, for the local principal (`local-operator`, secret = the operator token): a good signature passes, a
wrong secret, a changed query, another principal or a stale signature are refused with 403."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from local_stack import sigv4
from local_stack.gateway import Gateway, HttpRequest

OPERATOR_TOKEN = "op-token-for-tests"
HOST = "127.0.0.1:8765"


class Recorder:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, name: str, event: dict[str, Any]) -> Any:
        self.events.append(event)
        return {"statusCode": 200, "body": "{}"}


def signed(
    target: str, *, key: str = "local-operator", secret: str = OPERATOR_TOKEN, at: datetime | None = None
) -> HttpRequest:
    request = AWSRequest(method="GET", url=f"http://{HOST}{target}", headers={"Host": HOST})
    auth = SigV4Auth(Credentials(key, secret), "execute-api", "us-east-1")
    moment = at or datetime.now(UTC)
    request.context["timestamp"] = moment.strftime("%Y%m%dT%H%M%SZ")
    request.headers["X-Amz-Date"] = request.context["timestamp"]
    canonical = auth.canonical_request(request)
    signature = auth.signature(auth.string_to_sign(request, canonical), request)
    scope = f"{moment:%Y%m%d}/us-east-1/execute-api/aws4_request"
    header = f"AWS4-HMAC-SHA256 Credential={key}/{scope}, SignedHeaders=host;x-amz-date, Signature={signature}"
    headers = [("Host", HOST), ("X-Amz-Date", request.context["timestamp"]), ("Authorization", header)]
    return HttpRequest("GET", target, headers=headers)


def test_a_signed_operator_request_is_the_operator() -> None:
    invoke = Recorder()
    answer = Gateway(invoke, operator_token=OPERATOR_TOKEN).handle(signed("/v1/tenants?limit=100"))
    assert answer.status == 200
    assert invoke.events[0]["requestContext"]["authorizer"]["principal_type"] == "operator"


def test_bad_signatures_are_refused_and_invoke_nothing() -> None:
    invoke = Recorder()
    gateway = Gateway(invoke, operator_token=OPERATOR_TOKEN)
    tampered = signed("/v1/tenants?limit=100")
    tampered.target = "/v1/tenants?limit=5"
    cases = [
        signed("/v1/tenants", secret="not-the-token"),
        signed("/v1/tenants", key="someone-else"),
        signed("/v1/tenants", at=datetime.now(UTC) - timedelta(minutes=16)),
        tampered,
    ]
    assert [gateway.handle(request).status for request in cases] == [403, 403, 403, 403]
    assert invoke.events == []


def test_verify_needs_the_host_signed() -> None:
    request = signed("/v1/tenants")
    headers = {name.lower(): value for name, value in request.headers}
    headers["authorization"] = headers["authorization"].replace(
        "SignedHeaders=host;x-amz-date", "SignedHeaders=x-amz-date"
    )
    assert not sigv4.verify("GET", f"http://{HOST}/v1/tenants", headers, OPERATOR_TOKEN)
