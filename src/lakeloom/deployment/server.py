"""Running an endpoint with uvicorn: in the foreground (``lakeloom serve``) or in a thread.

uvicorn picks its fastest parts when they are installed (``httptools``, ``uvloop``) and its
pure-Python ones otherwise; ``UVICORN_HTTP`` and ``UVICORN_LOOP`` choose, as they do for
uvicorn's own command line. Several workers need an importable app factory (uvicorn starts
each worker in a fresh process), so :func:`serve_workers` takes an import string.
"""

from __future__ import annotations

import copy
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from lakeloom.errors import DeploymentError, LakeloomError

__all__ = ["RunningServer", "log_config", "serve", "serve_workers", "start_server"]


def log_config(level: str = "info") -> dict[str, Any]:
    """uvicorn's logging configuration plus lakeloom's deployment logger."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["lakeloom"] = {
        "handlers": ["default"],
        "level": level.upper(),
        "propagate": False,
    }
    return config


def _config(app: Any, host: str, port: int, log_level: str, configure_logging: bool) -> Any:
    import uvicorn

    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=os.environ.get("UVICORN_HTTP", "auto"),
        loop=os.environ.get("UVICORN_LOOP", "auto"),
        log_level=log_level,
        log_config=log_config(log_level) if configure_logging else None,
        access_log=False,
        lifespan="on",
        server_header=False,
        timeout_graceful_shutdown=10,
    )


def _startup_error(app: Any) -> BaseException | None:
    state = getattr(app, "state", None)
    return getattr(state, "startup_error", None) if state is not None else None


def _raise_startup(app: Any, what: str) -> None:
    error = _startup_error(app)
    if isinstance(error, LakeloomError):
        raise error
    if error is not None:
        raise DeploymentError(f"{what} failed to start: {type(error).__name__}: {error}")


class _QuietStartupFailure(logging.Filter):
    """Drops uvicorn's traceback of a startup failure lakeloom reports in one line itself."""

    def __init__(self, app: Any) -> None:
        super().__init__()
        self.app = app

    def filter(self, record: logging.LogRecord) -> bool:
        if not isinstance(_startup_error(self.app), LakeloomError):
            return True
        text = record.getMessage()
        return not (
            record.exc_info
            or text.startswith(("Traceback", "Exception in 'lifespan'"))
            or "startup failed" in text
        )


def serve(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 5001,
    log_level: str = "info",
    debug: bool = False,
) -> None:
    """Serve ``app`` in the foreground until interrupted (Ctrl-C or SIGTERM).

    A startup failure (a model that cannot load, a port in use) raises a
    :class:`~lakeloom.errors.LakeloomError` with a one-line message.
    """
    import uvicorn

    server = uvicorn.Server(_config(app, host, port, log_level, True))
    quiet = _QuietStartupFailure(app)
    uvicorn_log = logging.getLogger("uvicorn.error")
    if not debug:
        uvicorn_log.addFilter(quiet)
    try:
        server.run()
    except SystemExit:  # uvicorn's way of saying that startup failed
        pass
    finally:
        uvicorn_log.removeFilter(quiet)
    _raise_startup(app, "the endpoint")
    if not server.started:
        raise DeploymentError(f"the endpoint could not listen on {host}:{port} (in use?)")


def serve_workers(
    factory: str, *, host: str, port: int, workers: int, log_level: str = "info"
) -> None:
    """Serve with ``workers`` processes, each building its app with ``factory`` (import string)."""
    import uvicorn

    uvicorn.run(
        factory,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        log_config=log_config(log_level),
        access_log=False,
        lifespan="on",
        server_header=False,
        timeout_graceful_shutdown=10,
    )


@dataclass
class RunningServer:
    """A uvicorn server running in a thread of this process."""

    server: Any
    thread: threading.Thread
    host: str
    port: int

    @property
    def url(self) -> str:
        """``http://host:port``."""
        return f"http://{self.host}:{self.port}"

    def stop(self, timeout: float = 30.0) -> None:
        """Shut down gracefully (in-flight requests finish, the inference log is written)."""
        self.server.should_exit = True
        self.thread.join(timeout)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_server(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    log_level: str = "warning",
    timeout: float = 180.0,
) -> RunningServer:
    """Start ``app`` in a background thread; port 0 takes a free port. Returns once ready."""
    import uvicorn

    server = uvicorn.Server(_config(app, host, port, log_level, False))
    thread = threading.Thread(target=server.run, name="lakeloom-endpoint", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive():
            _raise_startup(app, "the endpoint")
            raise DeploymentError(f"the endpoint could not listen on {host}:{port}")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise DeploymentError(f"the endpoint did not start within {timeout:g}s")
        time.sleep(0.02)
    bound = port
    for srv in server.servers:
        for sock in srv.sockets:
            bound = sock.getsockname()[1]
            break
    logging.getLogger("lakeloom.deployment").info("endpoint listening on %s:%s", host, bound)
    return RunningServer(server, thread, host, bound)
