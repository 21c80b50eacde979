"""The console's SigV4 signer (web/src/sigv4.js, run by Node's WebCrypto as a browser runs it) signs a
request exactly as botocore signs the same request at the same instant: the signature API Gateway's IAM
authorization checks on the deployed operator routes."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.factories.local_stack_process import ROOT

SIGNER = ROOT / "web" / "src" / "sigv4.js"
NOW = datetime(2026, 12, 7, 23, 4, 5, tzinfo=UTC)
KEY = {
    "accessKeyId": "AKIDEXAMPLE",
    "secretAccessKey": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    "region": "eu-west-1",
}
REQUESTS = [
    ("GET", "https://abc123.execute-api.eu-west-1.amazonaws.com/live/v1/ops/freshness", None),
    ("GET", "https://abc123.execute-api.eu-west-1.amazonaws.com/live/v1/tenants?limit=100&cursor=a b+c/=", None),
    ("GET", "https://abc123.execute-api.eu-west-1.amazonaws.com/live/v1/tenants/t_a%2Fb/audit?limit=25", "tok"),
    ("GET", "http://127.0.0.1:8765/v1/usage/top?resource_type=api_calls&start=2026-12-01T00:00:00Z&limit=10", None),
]


def _node_sign(method: str, url: str, token: str | None) -> dict[str, object]:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is missing: `make setup` needs Node 20 (it bundles the pages)")
    credentials = {**KEY, **({"sessionToken": token} if token else {})}
    script = (
        f"import {{ sign }} from {json.dumps(SIGNER.as_uri())};\n"
        f"const out = await sign({{ method: {json.dumps(method)}, url: {json.dumps(url)}, "
        f"credentials: {json.dumps(credentials)}, now: new Date({json.dumps(NOW.isoformat())}) }});\n"
        "process.stdout.write(JSON.stringify(out));\n"
    )
    done = subprocess.run([node, "--input-type=module", "-e", script], capture_output=True, text=True, check=True)
    signed: dict[str, object] = json.loads(done.stdout)
    return signed


@pytest.mark.parametrize(("method", "url", "token"), REQUESTS)
def test_the_consoles_signature_is_botocores(method: str, url: str, token: str | None) -> None:
    signed = _node_sign(method, url, token)
    sent_url = str(signed["url"])
    headers = dict(signed["headers"])  # type: ignore[call-overload]
    # botocore signs the URL the console sends (its query already in canonical form) at the same instant.
    request = AWSRequest(method=method, url=sent_url, headers={"X-Amz-Date": headers["X-Amz-Date"]})
    if token:
        request.headers["X-Amz-Security-Token"] = token
    request.context["timestamp"] = headers["X-Amz-Date"]
    credentials = Credentials(KEY["accessKeyId"], KEY["secretAccessKey"], token)
    auth = SigV4Auth(credentials, "execute-api", KEY["region"])
    canonical = auth.canonical_request(request)
    expected = auth.signature(auth.string_to_sign(request, canonical), request)
    assert headers["Authorization"].endswith(f"Signature={expected}")
    assert f"Credential=AKIDEXAMPLE/20261207/{KEY['region']}/execute-api/aws4_request" in headers["Authorization"]
    assert headers.get("X-Amz-Security-Token") == token
