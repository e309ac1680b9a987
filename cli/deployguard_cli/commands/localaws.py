"""``deployguard localaws serve [--port N] [--host H]`` — the embedded local AWS as an endpoint.

moto with DeployGuard's extensions and the local Lambda runner
(:class:`deployguard_cli.localaws.server.LocalAws`), for ``deployguard check`` and a team's own
tests. It prints the endpoint and the variables to export, then serves until Ctrl-C (exit 130) or
SIGTERM (exit 0), each after stopping cleanly; a port it cannot have is exit 2 with the fix.
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import signal
import sys
import threading
from collections.abc import Iterator
from importlib import metadata
from typing import Any, NoReturn

from deployguard_cli.exit_codes import EXIT_INTERRUPTED, EXIT_OK
from deployguard_cli.localaws.server import ACCOUNT_ID, DEFAULT_HOST, DEFAULT_PORT, LocalAws

MAX_PORT = 65535


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "localaws", help="the embedded local AWS (moto with DeployGuard's extensions, no account, no Docker)"
    )
    commands = parser.add_subparsers(dest="localaws_command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="serve it on a local port, for `deployguard check` and your own tests (AWS_ENDPOINT_URL)",
    )
    serve.add_argument(
        "--port", type=port_number, default=DEFAULT_PORT, help=f"default: {DEFAULT_PORT}; 0 picks a free port"
    )
    serve.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=f"the address to listen on (default: {DEFAULT_HOST}, this machine only; 0.0.0.0: every "
        "interface — anyone who reaches it can read and change its state)",
    )
    serve.add_argument(
        "--log-requests",
        action="store_true",
        help="print one line per request on stderr (method, path, status)",
    )
    serve.set_defaults(run=run_serve)


def port_number(text: str) -> int:
    """``--port``: a TCP port, 0 to 65535."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= MAX_PORT:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port: give 0 to {MAX_PORT} (0 picks a free one)")
    return port


class _Terminated(Exception):
    """SIGTERM arrived: stop serving."""


def run_serve(args: argparse.Namespace) -> int:
    try:
        with LocalAws(args.host, args.port, log_requests=args.log_requests) as local, _terminate_on_sigterm():
            print(banner(local), flush=True)
            threading.Event().wait()  # until Ctrl-C or SIGTERM raises here
    except KeyboardInterrupt:
        print("deployguard: the local AWS stopped (Ctrl-C); its state is gone", file=sys.stderr)
        return EXIT_INTERRUPTED
    except _Terminated:
        print("deployguard: the local AWS stopped (SIGTERM); its state is gone", file=sys.stderr)
    return EXIT_OK


@contextlib.contextmanager
def _terminate_on_sigterm() -> Iterator[None]:
    """SIGTERM raises :class:`_Terminated` in the main thread (a clean stop, as Ctrl-C is)."""

    def terminate(*_: Any) -> NoReturn:
        raise _Terminated

    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers belong to the main thread: a caller's thread keeps the default
        return
    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def banner(local: LocalAws) -> str:
    """What a user needs to point a client at the server."""
    exports = "\n".join(f"export {name}={shlex.quote(value)}" for name, value in local.environment().items())
    return (
        f"DeployGuard's local AWS (moto {metadata.version('moto')} with DeployGuard's extensions) "
        f"serves {local.endpoint}\n"
        "In the shell that runs deployguard, the AWS CLI or your tests (boto3 reads these):\n\n"
        f"{exports}\n\n"
        f"Account {ACCOUNT_ID}, any region. Lambda runs each version's real code (Python, Node.js); "
        "CodeDeploy answers the hooks' APIs but runs no deployment.\n"
        "State lives in memory: Ctrl-C stops the server and forgets it."
    )
