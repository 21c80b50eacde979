"""Runs one function's handler the way Lambda's Python runtime does, for tests/lambda_python: started as
`python3.13 -I -S runner.py <function dir> <layer python dir>...`, so sys.path holds the standard library
and nothing else (no dev venv, no site-packages) until the function folder (/var/task) and the layers
(/opt/python) are put in front. Reads the event as JSON on stdin and writes {"result" | "error",
"python", "origins"} as JSON to the file named by LAMBDA_CHECK_OUTPUT (stdout is the function's log).
Standard library only: it must run before anything is importable."""

import json
import os
import sys
import time
import traceback
import uuid


class Context:
    def __init__(self, name: str, timeout_seconds: int) -> None:
        self.function_name = f"billing-check-{name}"
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = 512
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:000000000000:function:{self.function_name}"
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = "check/[$LATEST]check"
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def main() -> None:
    function_dir, *layer_dirs = sys.argv[1:]
    sys.path[:0] = [function_dir, *layer_dirs]
    event = json.load(sys.stdin)
    out = {"python": list(sys.version_info[:3])}
    try:
        import handler

        result = handler.handler(event, Context(os.path.basename(function_dir), 60))
        out["result"] = result
        # Modules the function loads on a later call, not on this one (the Stripe SDK: its first Stripe
        # call imports it): imported here, so their origin is checked too.
        for name in os.environ.get("LAMBDA_CHECK_ALSO_IMPORT", "").split():
            __import__(name)
    except BaseException as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
        out["traceback"] = traceback.format_exc()
    # Where each third-party and layer package was loaded from: the layers, never a venv.
    out["origins"] = {
        name: getattr(sys.modules[name], "__file__", None)
        for name in (
            "boto3",
            "botocore",
            "pydantic",
            "pydantic_core",
            "aws_lambda_powertools",
            "stripe",
            "billing_platform",
        )
        if name in sys.modules
    }
    with open(os.environ["LAMBDA_CHECK_OUTPUT"], "w") as output:
        json.dump(out, output, default=str)


if __name__ == "__main__":
    main()
