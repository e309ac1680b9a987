"""The local AWS as an HTTP endpoint: moto's server with DeployGuard's extensions, in this process.

``deployguard localaws serve`` runs it for ``deployguard check`` and for a team's own tests (any
AWS SDK or the AWS CLI with ``AWS_ENDPOINT_URL`` pointing at it). What it serves:

* moto's server application (``DomainDispatcherApplication``, as ``moto_server`` and moto's
  ``ThreadedMotoServer`` serve it: every service, state in memory, account ``123456789012``),
  on werkzeug's threaded server;
* DeployGuard's extensions (:func:`deployguard_cli.localaws.install_extensions`): CodeDeploy's hook
  APIs, UpdateAlias's ``RevisionId`` lock, CloudWatch's composite alarms, S3's single-PUT limit,
  and Lambda without Docker whose ``Invoke`` runs the version's real code
  (:mod:`~deployguard_cli.localaws.lambda_runner`; the function's own AWS calls come back here);
* Step Functions executions run by moto's interpreter (``execute_state_machine``), in real time,
  with :mod:`~deployguard_cli.localaws.moto_stepfunctions`' corrections; its Lambda tasks call this
  server (moto addresses ``http://localhost:$MOTO_PORT``, set to the port served), so they run real
  code too. That module's routing of executions onto the rehearsal's virtual clock stays off: there
  is no virtual clock here, a ``Wait`` state waits in real time.

CodeDeploy itself does not run: a deployment stays ``Created``, no hook is invoked and no traffic
shifts (``deployguard rehearse`` plays CodeDeploy's part).

NOTE: not ``ThreadedMotoServer``: it binds its socket in its own thread, where werkzeug answers a
port in use by printing and exiting that thread, and ``start()`` then waits forever. Here the socket
is bound first, in the caller's thread, and a port in use is a :class:`ServeError` naming the fix.
"""

from __future__ import annotations

import copy
import errno
import logging
import os
import socket
import threading
from typing import TYPE_CHECKING, Any, Final

from deployguard.errors import DeployGuardError
from deployguard_cli.localaws import install_extensions

if TYPE_CHECKING:
    from werkzeug.serving import BaseWSGIServer

__all__ = ["ACCOUNT_ID", "DEFAULT_HOST", "DEFAULT_PORT", "LocalAws", "ServeError"]

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 5000
"""moto_server's port."""
ACCOUNT_ID: Final = "123456789012"
"""moto's default account: every request that reaches the server acts in it."""
REGION: Final = "us-east-1"
FAKE_CREDENTIALS: Final = {"AWS_ACCESS_KEY_ID": "localaws", "AWS_SECRET_ACCESS_KEY": "localaws"}
"""Any credentials do: moto accepts every signature. These only keep SDKs from looking further."""
_MOTO_CONFIG: Final[dict[str, Any]] = {
    "lambda": {"use_docker": False},  # Invoke goes to the Lambda runner, not to Docker
    "stepfunctions": {"execute_state_machine": True},  # moto's interpreter runs executions
}
_WILDCARDS: Final = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}  # noqa: S104 - a lookup


class ServeError(DeployGuardError):
    """The local AWS cannot listen where it was asked to; the message says what to do instead."""

    code = "LOCALAWS"


class LocalAws:
    """moto's server with DeployGuard's extensions on ``host:port`` (``0``: a free port), served on
    a background thread between :meth:`start` and :meth:`stop` (or as a context manager).

    Starting installs the extensions and sets moto's Lambda and Step Functions configuration and
    ``MOTO_PORT`` for this process; stopping restores them and stops the Lambda runner's pool.
    """

    def __init__(
        self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *, log_requests: bool = False
    ) -> None:
        self.host = host
        self.port = port
        self._log_requests = log_requests
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._saved: tuple[dict[str, Any], str | None] | None = None

    @property
    def endpoint(self) -> str:
        """The URL to give clients (a wildcard address is reached through the loopback)."""
        host = _WILDCARDS.get(self.host, self.host)
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    def environment(self) -> dict[str, str]:
        """What a shell exports so that boto3, the AWS CLI and ``deployguard`` reach this server."""
        return {"AWS_ENDPOINT_URL": self.endpoint, **FAKE_CREDENTIALS, "AWS_DEFAULT_REGION": REGION}

    def start(self) -> LocalAws:
        """Bind (:class:`ServeError` when the address cannot be had), then serve on a thread."""
        if self._server is not None:
            raise RuntimeError("the local AWS is already serving")
        listening = _listen(self.host, self.port)  # first: a port in use changes nothing
        # NOTE: moto and werkzeug are imported here: `deployguard --help` must not pay for them.
        from moto.core.config import default_user_config  # noqa: PLC0415
        from moto.moto_server.werkzeug_app import (  # noqa: PLC0415
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server  # noqa: PLC0415

        with listening:
            self.port = int(listening.getsockname()[1])
            install_extensions()
            config: Any = default_user_config
            self._saved = ({key: config.get(key) for key in _MOTO_CONFIG}, os.environ.get("MOTO_PORT"))
            try:
                config.update(copy.deepcopy(_MOTO_CONFIG))
                os.environ["MOTO_PORT"] = str(self.port)
                _quiet_request_log(quiet=not self._log_requests)
                # werkzeug serves a duplicate of the bound socket (fd); ours closes on leaving the block
                self._server = make_server(
                    self.host,
                    self.port,
                    DomainDispatcherApplication(create_backend_app),
                    threaded=True,
                    request_handler=MotoRequestHandler,
                    fd=listening.fileno(),
                )
                self._thread = threading.Thread(
                    target=self._server.serve_forever,
                    kwargs={"poll_interval": 0.1},  # how long stop() may wait for it to notice
                    name="localaws-serve",
                    daemon=True,
                )
                self._thread.start()
            except BaseException:
                self.stop()
                raise
        return self

    def stop(self) -> None:
        """Stop serving, stop the Lambda runner's execution environments, restore moto's settings."""
        from deployguard_cli.localaws import lambda_runner  # noqa: PLC0415 - see start()

        server, thread, self._server, self._thread = self._server, self._thread, None, None
        if server is not None:
            server.shutdown()  # serve_forever returns and closes the socket
        if thread is not None:
            thread.join()
        lambda_runner.shutdown()
        if self._saved is not None:
            from moto.core.config import default_user_config  # noqa: PLC0415

            saved_config, saved_port = self._saved
            config: Any = default_user_config
            for key, value in saved_config.items():
                if value is None:
                    config.pop(key, None)
                else:
                    config[key] = value
            if saved_port is None:
                os.environ.pop("MOTO_PORT", None)
            else:
                os.environ["MOTO_PORT"] = saved_port
            self._saved = None

    def __enter__(self) -> LocalAws:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``, or a :class:`ServeError` saying what to change."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ServeError(
            f"cannot listen on {host}:{port}: {host!r} is not an address or a name this machine resolves "
            f"({exc.strerror}); use --host {DEFAULT_HOST} (this machine only) or --host 0.0.0.0 (every interface)"
        ) from exc
    try:
        return socket.create_server((host, port), family=family)  # SO_REUSEADDR, as werkzeug sets it
    except OSError as exc:
        raise ServeError(_listen_error(host, port, exc)) from exc


def _listen_error(host: str, port: int, exc: OSError) -> str:
    where = f"{host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return (
            f"port {port} on {host} is in use (another local AWS or another program listens on it): "
            "stop that program, or pick another port with --port N (--port 0 picks a free one)"
        )
    if exc.errno == errno.EACCES:
        return f"cannot listen on {where}: permission denied; pick a port from 1024 up with --port N"
    if exc.errno == errno.EADDRNOTAVAIL:
        return (
            f"cannot listen on {where}: {host} is not an address of this machine; use --host "
            f"{DEFAULT_HOST} (this machine only) or --host 0.0.0.0 (every interface)"
        )
    return f"cannot listen on {where}: {exc.strerror or exc}"


def _quiet_request_log(*, quiet: bool) -> None:
    """werkzeug logs one line per request on stderr (method, path with its query, status);
    ``quiet`` keeps only its warnings and errors."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING if quiet else logging.INFO)
