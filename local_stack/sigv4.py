"""IAM (SigV4) authorization of operator routes, as the deployed API checks it, for one local principal:
access key id `local-operator` whose secret access key is the stack's operator token. The console signs its
requests this way on a deployed stack (web/src/sigv4.js); here the same code path runs against `make dev`.
The signature is recomputed with botocore (the reference signer) over the headers the request says it
signed; a request older or newer than 15 minutes is refused, as AWS refuses it."""

from __future__ import annotations

import hmac
import re
from datetime import UTC, datetime, timedelta

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

SCHEME = "AWS4-HMAC-SHA256"
LOCAL_ACCESS_KEY_ID = "local-operator"
REGION = "us-east-1"
SERVICE = "execute-api"
SKEW = timedelta(minutes=15)
_HEADER = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<day>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request,"
    r"\s*SignedHeaders=(?P<signed>[a-z0-9;-]+),\s*Signature=(?P<signature>[0-9a-f]{64})$"
)


def is_sigv4(authorization: str | None) -> bool:
    return bool(authorization) and str(authorization).startswith(f"{SCHEME} ")


def verify(
    method: str, url: str, headers: dict[str, str], secret: str, *, body: bytes = b"", now: datetime | None = None
) -> bool:
    """True when `headers` (names lower case) carry a valid SigV4 signature of this request by the local
    operator principal, made within 15 minutes of `now`."""
    match = _HEADER.match(headers.get("authorization", ""))
    amz_date = headers.get("x-amz-date", "")
    if match is None or match["key"] != LOCAL_ACCESS_KEY_ID or (match["region"], match["service"]) != (REGION, SERVICE):
        return False
    try:
        signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return False
    if match["day"] != amz_date[:8] or abs((now or datetime.now(UTC)) - signed_at) > SKEW:
        return False
    names = match["signed"].split(";")
    if "host" not in names or any(name not in headers for name in names):
        return False
    request = AWSRequest(method=method, url=url, data=body, headers={name: headers[name] for name in names})
    request.context["timestamp"] = amz_date
    token = headers.get("x-amz-security-token")
    auth = SigV4Auth(Credentials(LOCAL_ACCESS_KEY_ID, secret, token), SERVICE, REGION)
    expected = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)
    return hmac.compare_digest(expected, match["signature"])
