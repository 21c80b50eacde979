"""`python -m local_stack [--port P] [--meter-every SECONDS] [--concurrency N]`: run the platform locally
until Ctrl-C. With STRIPE_SECRET_KEY (test mode) set, billing calls go to Stripe; with STRIPE_WEBHOOK_SECRET
set, the webhook route verifies with it (what `stripe listen` prints)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import warnings
from types import FrameType

from local_stack.dynamodb_local import StartCancelled
from local_stack.stack import LocalStack, StackOptions


def parse_args(argv: list[str] | None = None) -> StackOptions:
    parser = argparse.ArgumentParser(prog="python -m local_stack", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="API port on 127.0.0.1 (default: a free one)")
    parser.add_argument(
        "--meter-every", type=float, default=None, metavar="SECONDS", help="run meter_reporter this often (demo)"
    )
    parser.add_argument("--no-pollers", action="store_true", help="do not feed SQS / stream records to functions")
    parser.add_argument("--no-hooks", action="store_true", help="skip startup hooks (local_stack.hooks)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument(
        "--concurrency",
        type=int,
        default=int(os.environ.get("CONCURRENCY") or 0) or None,
        help="containers per function (default: CONCURRENCY, else each function's local_concurrency)",
    )
    parser.add_argument(
        "--timeout-scale",
        type=float,
        default=float(os.environ.get("LOCAL_TIMEOUT_SCALE") or 1.0),
        help="multiply function and integration timeouts (default: LOCAL_TIMEOUT_SCALE, else 1)",
    )
    args = parser.parse_args(argv)
    if args.timeout_scale <= 0:
        parser.error("--timeout-scale must be positive")
    if args.concurrency is not None and args.concurrency < 1:
        parser.error("--concurrency must be at least 1")
    try:
        return StackOptions(
            port=args.port,
            meter_every_seconds=args.meter_every,
            pollers=not args.no_pollers,
            hooks=not args.no_hooks,
            log_level=args.log_level,
            concurrency=args.concurrency,
            timeout_scale=args.timeout_scale,
            # Stripe test mode and the Stripe CLI: taken from the developer's environment when set.
            stripe_secret_key=os.environ.get("STRIPE_SECRET_KEY") or None,
            stripe_webhook_secret=os.environ.get("STRIPE_WEBHOOK_SECRET") or None,
        )
    except ValueError as exc:
        parser.error(str(exc))


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    logging.basicConfig(level=options.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Metrics are disabled locally; Powertools still warns on every invocation that none were published.
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    for noisy in ("werkzeug", "botocore", "urllib3", "moto"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    # SIGINT (Ctrl-C) and SIGTERM only set `stop`: startup checks it between steps and while DynamoDB Local
    # boots, so a slow start still ends promptly, and no process is ever started without being recorded
    # for the shutdown below (an exception raised at an arbitrary point could not promise that).
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            # os.write, not print: the handler may interrupt a print of the main thread (not reentrant).
            os.write(sys.stdout.fileno(), b"still stopping, please wait...\n")
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    stack = LocalStack(options)
    try:
        stack.start(cancelled=stop.is_set)
        print(stack.banner(), flush=True)
        print(f"READY {stack.base_url} startup_seconds={stack.timings.marks['ready']}", flush=True)
        while not stop.wait(0.5):
            pass
    except StartCancelled:
        pass
    finally:
        print("stopping...", flush=True)
        stack.stop()
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
