"""The local stack under load: `POST /v1/entitlements/consume` and `POST /v1/usage` over HTTP at 1, 16, 64 and
256 concurrent keep-alive clients (p50 / p99 latency), beside the library's direct rate on the same emulators
in the same run (the ratio is what the HTTP path, the gateway and the containers cost), and where the CPU
went at each level, which names the bottleneck.

The stack is `python -m local_stack` in its own process (as `make dev` runs it); the clients and the
direct calls run here. CPU seconds per second are read from /proc for: the stack process (HTTP server,
gateway, pollers), its containers (the functions), DynamoDB Local (java) and this process (clients). The
machine has 2 shared cores: a part near 2.0 in total is CPU-bound, and the largest share is the bottleneck.

Run: `.venv/bin/python -m tests.bench bench_local_stack` (about 2 minutes).
"""

from __future__ import annotations

import functools
import http.client
import json
import os
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from billing_platform import resources
from tests.factories.local_stack_process import LocalStackProcess

LEVELS = (1, 16, 64, 256)
SECONDS = 4.0  # per level and path
RECORDS_PER_POST = 10
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count() or 1


# ---------------------------------------------------------------------------------------------- CPU


def _stat(pid: int) -> tuple[str, int, float] | None:
    """(command, parent pid, CPU seconds) of a process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    command = text[text.index("(") + 1 : text.rindex(")")]
    fields = text.rsplit(")", 1)[1].split()
    return command, int(fields[1]), (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def cpu_by_part(stack_pid: int) -> dict[str, float]:
    """CPU seconds so far of: the stack process (HTTP server, gateway and moto's SQS), its containers (any
    descendant but java), java (DynamoDB Local), this process (the clients)."""
    table = {int(p.name): s for p in Path("/proc").iterdir() if p.name.isdigit() and (s := _stat(int(p.name)))}
    children: dict[int, list[int]] = {}
    for pid, (_, parent, _) in table.items():
        children.setdefault(parent, []).append(pid)
    parts = {"stack": table.get(stack_pid, ("", 0, 0.0))[2], "containers": 0.0, "dynamodb_local": 0.0}
    todo = list(children.get(stack_pid, []))
    while todo:
        pid = todo.pop()
        command, _, cpu = table[pid]
        parts["dynamodb_local" if command == "java" else "containers"] += cpu
        todo += children.get(pid, [])
    own = _stat(os.getpid())
    parts["clients"] = own[2] if own else 0.0
    return parts


# ---------------------------------------------------------------------------------------------- load


@dataclass
class Level:
    clients: int
    rate: float  # requests/s
    p50_ms: float
    p99_ms: float
    statuses: dict[int, int]
    cpu: dict[str, float]  # CPU seconds per second, by part
    load: float = 0.0  # the machine's 1-minute load average at the end of the run


def http_load(base_url: str, path: str, body: Callable[[], bytes], key: str, clients: int, stack_pid: int) -> Level:
    url = urlsplit(base_url)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    stop = threading.Event()
    ready = threading.Barrier(clients + 1)

    def client() -> None:
        connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=120)
        mine: list[float] = []
        codes: dict[int, int] = {}
        ready.wait()
        while not stop.is_set():
            started = time.perf_counter()
            try:
                connection.request("POST", path, body=body(), headers=headers)
                response = connection.getresponse()
                response.read()
                codes[response.status] = codes.get(response.status, 0) + 1
            except OSError:
                codes[0] = codes.get(0, 0) + 1  # 0: no HTTP answer (reset, refused)
                connection.close()
                connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=120)
            mine.append(time.perf_counter() - started)
        connection.close()
        with lock:
            latencies.extend(mine)
            for code, n in codes.items():
                statuses[code] = statuses.get(code, 0) + n

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    ready.wait()
    before, started = cpu_by_part(stack_pid), time.perf_counter()
    stop.wait(SECONDS)
    stop.set()
    for thread in threads:
        thread.join(180)
    elapsed = time.perf_counter() - started
    after = cpu_by_part(stack_pid)
    return _level(clients, latencies, elapsed, statuses, {k: (after[k] - before[k]) / elapsed for k in after})


def direct_load(call: Callable[[int], Any], clients: int, stack_pid: int) -> Level:
    """The library call the function makes, from `clients` threads here, on the same emulators."""
    latencies: list[float] = []
    lock = threading.Lock()
    stop = threading.Event()

    def worker(i: int) -> None:
        mine = []
        while not stop.is_set():
            started = time.perf_counter()
            call(i)
            mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)

    before, started = cpu_by_part(stack_pid), time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        for i in range(clients):
            pool.submit(worker, i)
        stop.wait(SECONDS)
        stop.set()
    elapsed = time.perf_counter() - started
    after = cpu_by_part(stack_pid)
    return _level(
        clients, latencies, elapsed, {200: len(latencies)}, {k: (after[k] - before[k]) / elapsed for k in after}
    )


def _level(
    clients: int, latencies: list[float], elapsed: float, statuses: dict[int, int], cpu: dict[str, float]
) -> Level:
    ordered = sorted(latencies) or [0.0]
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    rate = len(latencies) / elapsed
    return Level(clients, rate, statistics.median(ordered) * 1000, p99 * 1000, statuses, cpu, os.getloadavg()[0])


def bottleneck(over_http: Level, direct: Level, concurrency: int) -> str:
    """The part that limits the HTTP rate at this level, from where the CPU went."""
    cpu = over_http.cpu
    total = sum(cpu.values())
    top = max(cpu, key=lambda part: cpu[part])
    load = over_http.load
    if load > 2 * CORES and total < CORES * 0.5:
        return (
            f"the shared machine: load average {load:.0f} on {CORES} cores, this stack got {total:.2f} cores "
            f"(of which {top} {cpu[top]:.2f})"
        )
    if over_http.clients == 1:
        return f"latency of one request at a time (each part waits for the next; {total:.2f} cores busy)"
    if total >= 1.6:
        return f"CPU ({total:.2f} of 2 cores busy): mostly {top} ({cpu[top]:.2f})"
    if over_http.clients > concurrency and over_http.p50_ms > 2 * direct.p50_ms:
        return f"function concurrency ({concurrency} containers): requests queue for a container"
    return f"{top} ({cpu[top]:.2f} cores), {total:.2f} cores busy"


def report(title: str, unit: str, rows: list[tuple[Level, Level]], concurrency: int) -> None:
    print(f"\n{title}")
    print(
        f"{'clients':>7} {unit + '/s HTTP':>14} {'p50 ms':>8} {'p99 ms':>8} {'direct/s':>9} {'ratio':>6}  "
        f"{'cpu: stack containers ddb clients':>36}  statuses / bottleneck"
    )
    for row, direct in rows:
        cpu = " ".join(f"{row.cpu[k]:.2f}" for k in ("stack", "containers", "dynamodb_local", "clients"))
        ratio = row.rate / direct.rate if direct.rate else 0.0
        print(
            f"{row.clients:>7} {row.rate:>14.1f} {row.p50_ms:>8.1f} {row.p99_ms:>8.1f} {direct.rate:>9.1f} "
            f"{ratio:>6.2f}  {cpu:>36}  {dict(sorted(row.statuses.items()))}"
        )
        print(f"{'':>7} bottleneck: {bottleneck(row, direct, concurrency)}")


# ---------------------------------------------------------------------------------------------- main


def _library_env(stack: LocalStackProcess) -> None:
    import boto3

    banner = stack.banner
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL_DYNAMODB": banner.dynamodb_url,
            "AWS_ENDPOINT_URL_SQS": banner.moto_url,
            **{spec.env_var: spec.local_name for spec in resources.TABLES},
        }
    )
    sqs = boto3.client("sqs", endpoint_url=banner.moto_url, region_name="us-east-1")
    os.environ[resources.USAGE_QUEUE.env_var] = sqs.get_queue_url(QueueName=resources.USAGE_QUEUE.local_name)[
        "QueueUrl"
    ]
    from billing_platform import clients
    from billing_platform.settings import get_settings

    get_settings.cache_clear()
    clients.reset()


def _consume_direct(enforcer: Any, tenant: str, _thread: int) -> Any:
    return enforcer.sync.check_and_record(tenant, "tokens", Decimal(1))  # the blocking face Lambda code uses


def _ingest_direct(ingest: Any, caller: Any, records: Callable[[], bytes], _thread: int) -> Any:
    return ingest.ingest(caller, json.loads(records())["records"])


def main() -> None:
    from billing_platform.auth.caller import caller_from_request_context
    from billing_platform.enforcer import EntitlementEnforcer
    from billing_platform.usage.ingest import UsageIngestService

    with LocalStackProcess.start("--log-level", "ERROR", "--no-pollers", "--no-hooks") as stack:
        stack.wait_ready()
        _library_env(stack)
        time.sleep(3)  # the containers warm after READY
        pid = stack.process.pid

        def key_for(tenant: str) -> str:
            status, body = stack.request("POST", f"/v1/tenants/{tenant}/api-keys", {"name": "bench"})
            assert status == 201, body
            return str(body["secret"])

        enforcer = EntitlementEnforcer()
        ingest = UsageIngestService()
        consume_rows: list[tuple[Level, Level]] = []
        usage_rows: list[tuple[Level, Level]] = []
        for clients in LEVELS:
            # A fresh tenant per level and path: the free plan's 10,000 tokens are not used up.
            tenant = f"t_bench_{clients}"
            consume = json.dumps({"tenant_id": tenant, "resource_type": "tokens", "quantity": 1}).encode()
            key = key_for(tenant)
            # Untimed first consume: the tenant's counter is provisioned, the key's authorizer answer cached.
            stack.request("POST", "/v1/entitlements/consume", json.loads(consume), token=key)
            http_consume = http_load(
                stack.banner.base_url, "/v1/entitlements/consume", functools.partial(bytes, consume), key, clients, pid
            )
            direct_tenant = f"t_direct_{clients}"
            key_for(direct_tenant)  # registers the tenant, as for HTTP
            _consume_direct(enforcer, direct_tenant, 0)
            direct_consume = direct_load(functools.partial(_consume_direct, enforcer, direct_tenant), clients, pid)
            consume_rows.append((http_consume, direct_consume))

            def records() -> bytes:
                now = datetime.now(UTC).isoformat()
                batch = [{"resource_type": "api_calls", "quantity": 1, "timestamp": now}] * RECORDS_PER_POST
                return json.dumps({"records": batch}).encode()

            usage_tenant = f"t_usage_{clients}"
            usage_key = key_for(usage_tenant)
            stack.request("POST", "/v1/usage", json.loads(records()), token=usage_key)  # untimed, as above
            http_usage = http_load(stack.banner.base_url, "/v1/usage", records, usage_key, clients, pid)
            caller = caller_from_request_context(
                {"authorizer": {"principal_type": "tenant", "tenant_id": usage_tenant, "principalId": "bench"}}
            )
            direct_usage = direct_load(functools.partial(_ingest_direct, ingest, caller, records), clients, pid)
            usage_rows.append((http_usage, direct_usage))
            print(f"  {clients} clients done", flush=True)

    entitlements = resources.ENTITLEMENTS.local_concurrency
    report(
        f"POST /v1/entitlements/consume (one conditional UpdateItem each; entitlements containers: {entitlements})",
        "consumes",
        consume_rows,
        entitlements,
    )
    report(
        f"POST /v1/usage ({RECORDS_PER_POST} records per request -> SQS; usage_ingest containers: "
        f"{resources.USAGE_INGEST.local_concurrency})",
        "posts",
        usage_rows,
        resources.USAGE_INGEST.local_concurrency,
    )
    print(
        "\ndirect = the same library call (EntitlementEnforcer.sync.check_and_record / UsageIngestService.ingest) "
        "from as many threads in this process, on the same DynamoDB Local / moto; ratio = HTTP / direct. "
        "cpu = cores used by each part during the HTTP run: stack = the stack process (HTTP server, gateway, moto's "
        "SQS), containers = the functions, ddb = DynamoDB Local."
    )
