"""The whole platform on one machine: emulators, provisioning, environment, handlers, HTTP API, pollers,
schedule and startup hooks, started in that order and stopped in reverse."""

from __future__ import annotations

import functools
import json
import logging
import os
import secrets
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config

from billing_platform import resources
from local_stack import hooks
from local_stack.containers import start_fork_server
from local_stack.dynamodb_local import DynamoDBLocal, StartCancelled, free_port
from local_stack.gateway import Gateway, HttpRequest, HttpResponse
from local_stack.metrics import QueueMetrics, iterator_age_reporter
from local_stack.openapi import merged_openapi, swagger_html
from local_stack.pollers import Scheduler, SqsPoller, StreamPoller
from local_stack.provider_link import ProviderServer, install_remote_provider
from local_stack.provision import create_event_bus, create_queue, create_tables
from local_stack.runtime import FunctionRuntime
from local_stack.server import ApiServer

log = logging.getLogger("local_stack")

REGION = "us-east-1"
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_SESSION_TOKEN": "local"}


@dataclass
class StackOptions:
    port: int = 0
    meter_every_seconds: float | None = None  # default: resources.METER_REPORTER.schedule_minutes
    pollers: bool = True
    hooks: bool = True
    log_level: str = "INFO"
    concurrency: int | None = None  # containers per function; default: each FunctionSpec.local_concurrency
    warm: bool = True  # start one container per function after READY
    timeout_scale: float = 1.0  # function and integration timeouts times this (a starved machine, tests)
    # A Stripe test-mode key selects the real StripeBillingProvider; unset, the in-memory mock stands in.
    stripe_secret_key: str | None = field(default=None, repr=False)
    # The secret `stripe listen` prints; unset, the stack makes one (and its mock signs with it).
    stripe_webhook_secret: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.stripe_secret_key and not self.stripe_secret_key.startswith(("sk_test_", "rk_test_")):
            raise ValueError("the local stack takes Stripe test-mode keys only (sk_test_... or rk_test_...)")

    @property
    def uses_stripe(self) -> bool:
        return bool(self.stripe_secret_key)


@dataclass
class Timings:
    marks: dict[str, float] = field(default_factory=dict)
    _start: float = field(default_factory=time.monotonic)

    def mark(self, name: str) -> None:
        self.marks[name] = round(time.monotonic() - self._start, 3)


class LocalStack:
    """Start with `start()`, stop with `stop()` (idempotent); `base_url` and `env` once started."""

    def __init__(self, options: StackOptions | None = None) -> None:
        self.options = options or StackOptions()
        self.operator_token = secrets.token_urlsafe(24)
        self.env: dict[str, str] = {}
        self.timings = Timings()
        self.runtime = FunctionRuntime(concurrency=self.options.concurrency, timeout_scale=self.options.timeout_scale)
        self.provider_server: ProviderServer | None = None
        self.ddb: DynamoDBLocal | None = None
        self.moto: Any = None
        self.server: ApiServer | None = None
        self._workers: list[SqsPoller | StreamPoller | Scheduler | QueueMetrics] = []
        self._hook_stops: list[tuple[str, Callable[[], None]]] = []
        self._stopped = False
        self._cancelled: Callable[[], bool] = lambda: False

    @property
    def base_url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.port}"

    # -- start

    def start(self, cancelled: Callable[[], bool] = lambda: False) -> LocalStack:
        """Start everything, in order. `cancelled` is checked between steps and while DynamoDB Local
        boots: when it turns true, what was started is stopped and StartCancelled raised. Cancelling
        cooperatively, rather than raising KeyboardInterrupt at an arbitrary point, means no process can
        be started without being recorded for stop()."""
        self._cancelled = cancelled
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _checkpoint(self, name: str) -> None:
        self.timings.mark(name)
        if self._cancelled():
            raise StartCancelled(f"after {name}")

    def _start(self) -> None:
        from moto.server import ThreadedMotoServer

        # Bind the API first so a busy --port fails fast, before Java starts.
        self.server = ApiServer(self._gateway(), port=self.options.port)
        start_fork_server()  # its imports overlap with DynamoDB Local's start
        self.ddb = DynamoDBLocal()
        self.ddb.start(cancelled=self._cancelled)
        self._checkpoint("dynamodb_local")
        moto_port = free_port()
        self.moto = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
        self.moto.start()
        moto_url = f"http://127.0.0.1:{moto_port}"
        # moto keeps its backends per process, not per server: a stack started after another one in the same
        # process (tests) would find the first one's secrets, queues and bus. Each stack starts from nothing.
        reset = urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST")  # noqa: S310 (our loopback URL)
        urllib.request.urlopen(reset, timeout=30).close()  # noqa: S310
        self._checkpoint("moto")

        self.env = self._provision(self.ddb.endpoint_url, moto_url)
        os.environ.update(self.env)
        # The layer caches settings and clients per process: make it read the environment just set.
        from billing_platform import clients
        from billing_platform.settings import get_settings

        get_settings.cache_clear()
        clients.reset()
        self._checkpoint("provisioned")

        setup = None
        if not self.options.uses_stripe:
            # The mock provider lives here, one for all containers (see local_stack.provider_link).
            self.provider_server = ProviderServer().start()
            host, port = self.provider_server.address
            setup = functools.partial(install_remote_provider, host, port, self.provider_server.authkey)
        self.runtime.configure(dict(os.environ), setup=setup)
        self._checkpoint("containers_configured")

        self.server.start()
        self._checkpoint("api_listening")
        # One container per function starts now (in parallel, after READY): a broken handler is logged at
        # once, and most first requests find a warm container.
        if self.options.warm:
            self.runtime.warm_in_background()
        if self.options.pollers:
            self._start_workers()
        if self.options.hooks:
            for name, start in hooks.load_hooks():
                stop = start(self.base_url, dict(self.env))
                if stop is not None:
                    self._hook_stops.append((name, stop))
        self.timings.mark("ready")

    def _client(self, service: str, endpoint: str) -> Any:
        return boto3.client(
            service,  # type: ignore[call-overload]
            endpoint_url=endpoint,
            region_name=REGION,
            aws_access_key_id="local",
            aws_secret_access_key="local",
            aws_session_token="local",
            config=Config(retries={"mode": "standard", "max_attempts": 3}, account_id_endpoint_mode="disabled"),
        )

    def _provision(self, ddb_url: str, moto_url: str) -> dict[str, str]:
        names = create_tables(self._client("dynamodb", ddb_url))
        sqs = self._client("sqs", moto_url)
        for queue in resources.QUEUES:
            names.update(create_queue(sqs, queue))
        names.update(create_event_bus(self._client("events", moto_url), sqs, resources.EVENT_BUS, names))
        webhook_secret = self.options.stripe_webhook_secret or "whsec_local_" + secrets.token_hex(16)
        api_key = self.options.stripe_secret_key or "sk_test_local_" + secrets.token_hex(12)
        sm = self._client("secretsmanager", moto_url)
        api_arn = sm.create_secret(Name="billing/local/stripe-api-key", SecretString=api_key)["ARN"]
        hook_arn = sm.create_secret(Name="billing/local/stripe-webhook-secret", SecretString=webhook_secret)["ARN"]
        return {
            **FAKE_CREDENTIALS,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_ENDPOINT_URL_DYNAMODB": ddb_url,
            "AWS_ENDPOINT_URL_DYNAMODBSTREAMS": ddb_url,
            "AWS_ENDPOINT_URL_SQS": moto_url,
            "AWS_ENDPOINT_URL_SECRETSMANAGER": moto_url,
            "AWS_ENDPOINT_URL_EVENTBRIDGE": moto_url,
            "AWS_ENDPOINT_URL_CLOUDWATCH": moto_url,
            resources.AGGREGATOR_FUNCTION_NAME_ENV: resources.USAGE_AGGREGATOR.name,
            "ENVIRONMENT": "development",
            "BILLING_PROVIDER": "stripe" if self.options.uses_stripe else "mock",
            "POWERTOOLS_SERVICE_NAME": "billing-local",
            "POWERTOOLS_METRICS_NAMESPACE": "BillingLocal",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": self.options.log_level,
            "OPERATOR_TOKEN": self.operator_token,
            # Deployed functions only get the ARNs; locally the plain values are set too (they win).
            resources.STRIPE_API_KEY_SECRET_ENV: api_arn,
            resources.STRIPE_WEBHOOK_SECRET_ENV: hook_arn,
            "STRIPE_SECRET_KEY": api_key,
            "STRIPE_WEBHOOK_SECRET": webhook_secret,
            **names,
        }

    def _gateway(self) -> Gateway:
        def authorize(event: dict[str, Any]) -> Any:
            return self.runtime.invoke(resources.AUTHORIZER.name, event)

        def openapi_json(_: HttpRequest) -> HttpResponse:
            body = json.dumps(merged_openapi(self.runtime, self.base_url)).encode()
            return HttpResponse(200, [("Content-Type", "application/json")], body)

        def docs(request: HttpRequest) -> HttpResponse:
            # Swagger UI links its spec as /docs?format=json (Powertools' page): answer that with the JSON.
            if "format=json" in request.query.split("&"):
                return openapi_json(request)
            html = swagger_html(merged_openapi(self.runtime, self.base_url))
            return HttpResponse(200, [("Content-Type", "text/html; charset=utf-8")], html)

        return Gateway(
            self.runtime.invoke,
            operator_token=self.operator_token,
            authorize=authorize,
            extra_routes={("GET", "/openapi.json"): openapi_json, ("GET", "/docs"): docs},
        )

    def _start_workers(self) -> None:
        # AWS publishes these metrics for deployed queues and stream consumers; here, into moto's CloudWatch.
        cloudwatch = self._client("cloudwatch", self.env["AWS_ENDPOINT_URL_CLOUDWATCH"])
        iterator_ages = iterator_age_reporter(cloudwatch)
        queue_urls = [self.env[u] for q in resources.QUEUES for u in (q.env_var, q.dlq_env_var)]
        self._workers.append(
            QueueMetrics(
                cloudwatch,
                self._client("sqs", self.env["AWS_ENDPOINT_URL_SQS"]),
                queue_urls,
                region=REGION,
            )
        )
        for spec in resources.FUNCTIONS:
            if spec.sqs_source is not None:
                src = spec.sqs_source
                self._workers.append(
                    SqsPoller(
                        self._client("sqs", self.env["AWS_ENDPOINT_URL_SQS"]),
                        queue_url=self.env[src.queue.env_var],
                        function=spec.name,
                        invoke=self.runtime.invoke,
                        batch_size=src.batch_size,
                        batching_window_seconds=src.max_batching_window_seconds,
                        report_batch_item_failures=src.report_batch_item_failures,
                    )
                )
            if spec.stream_source is not None:
                stream = spec.stream_source
                ddb_url = self.env["AWS_ENDPOINT_URL_DYNAMODB"]
                self._workers.append(
                    StreamPoller(
                        self._client("dynamodb", ddb_url),
                        self._client("dynamodbstreams", ddb_url),
                        table_name=self.env[stream.table.env_var],
                        function=spec.name,
                        invoke=self.runtime.invoke,
                        batch_size=stream.batch_size,
                        batching_window_seconds=stream.max_batching_window_seconds,
                        starting_position=stream.starting_position,
                        retry_attempts=stream.retry_attempts,
                        bisect_batch_on_error=stream.bisect_batch_on_error,
                        report_batch_item_failures=stream.report_batch_item_failures,
                        key_prefixes=stream.key_prefixes,
                        on_batch=iterator_ages,
                    )
                )
            if spec.schedule_minutes is not None:
                every = self.options.meter_every_seconds or spec.schedule_minutes * 60.0
                self._workers.append(Scheduler(function=spec.name, invoke=self.runtime.invoke, every_seconds=every))
        for worker in self._workers:
            worker.start()

    # -- stop

    def stop(self) -> None:
        """Stop everything started, newest first; safe to call twice or after a failed start."""
        if self._stopped:
            return
        self._stopped = True
        for name, stop in reversed(self._hook_stops):
            try:
                stop()
            except Exception:
                log.exception("hook %s failed to stop", name)
        for worker in self._workers:
            worker._stop.set()
        for worker in self._workers:
            worker.stop()
        if self.server is not None:
            self.server.stop()
        self.runtime.stop()
        if self.provider_server is not None:
            self.provider_server.stop()
        if self.moto is not None:
            self.moto.stop()
        if self.ddb is not None:
            self.ddb.stop()

    def _billing_line(self) -> str:
        if self.options.uses_stripe:
            provider = "Stripe test mode (STRIPE_SECRET_KEY)"
        else:
            provider = "local mock provider (set STRIPE_SECRET_KEY for Stripe test mode)"
        if self.options.stripe_webhook_secret:
            hooks_from = "webhooks verified with your STRIPE_WEBHOOK_SECRET (stripe listen)"
        else:
            hooks_from = "webhooks verified with a generated secret (set STRIPE_WEBHOOK_SECRET for stripe listen)"
        return f"{provider}; {hooks_from}"

    def _concurrency_line(self) -> str:
        if self.options.concurrency:
            return f"up to {self.options.concurrency} containers per function (CONCURRENCY)"
        return "up to resources.local_concurrency containers per function (CONCURRENCY=n to change)"

    def _library_env(self) -> str:
        # Everything botocore and Settings need that has no default: a program given only the endpoints
        # fails on the region, the credentials, then the queue URL (moto's, known only once it runs).
        names = (
            "AWS_DEFAULT_REGION",
            *FAKE_CREDENTIALS,
            "AWS_ENDPOINT_URL_DYNAMODB",
            "AWS_ENDPOINT_URL_SQS",
            resources.USAGE_QUEUE.env_var,
        )
        return " ".join(f"{name}={self.env[name]}" for name in names)

    def banner(self) -> str:
        url = self.base_url
        token = self.operator_token
        return "\n".join(
            [
                f"Billing platform running at {url}  (ready in {self.timings.marks.get('ready', 0):.1f} s)",
                f"  operator token: {token}",
                f"  DynamoDB Local: {self.env.get('AWS_ENDPOINT_URL_DYNAMODB')}",
                f"  moto (SQS, Secrets Manager, EventBridge): {self.env.get('AWS_ENDPOINT_URL_SQS')}",
                f"  billing events (every event on the bus): {self.env.get('LOCAL_EVENTS_TAP_QUEUE_URL')}",
                f"  billing: {self._billing_line()}",
                f"  functions: one container pool each, {self._concurrency_line()}",
                f"  OpenAPI: {url}/openapi.json   Swagger UI: {url}/docs",
                f"  operator console: {url}/console#token={token}",
                f"  tenant portal: {url}/portal#tenant=<tenant>&token=<portal token>  (mint one with POST "
                f"{url}/v1/tenants/<tenant>/portal-tokens '{{\"ttl_seconds\": 3600}}')",
                "The library (an asyncio or FastAPI program beside it) reaches the same tables and queue with:",
                f"  export {self._library_env()}",
                "Try:",
                f"  curl -s {url}/health",
                f"  curl -s -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' \\",
                f'       -d \'{{"email": "ada@example.com", "tenant_id": "t_demo"}}\' {url}/v1/customers',
                f"  curl -s -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' \\",
                f'       -d \'{{"name": "demo"}}\' {url}/v1/tenants/t_demo/api-keys',
                f"  curl -s -H 'Authorization: Bearer <tenant api key>' {url}/v1/tenants/t_demo/entitlements",
                "Ctrl-C stops everything.",
            ]
        )
