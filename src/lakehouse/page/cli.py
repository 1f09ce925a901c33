"""The live page's server: candles per pair (closed minutes from Gold, the open minute live from the topic), the
pipeline's health, a JSON API and Prometheus /metrics. make run / make demo start it with the pipeline; `make page`
starts it alone, on the data an earlier run left (and on the topic, if the broker is up).

Usage (the entry point is infra/page.py):
    python infra/page.py                                  # http://127.0.0.1:8500/ over data/ and crypto.trades
    python infra/page.py --port 8600 --data-dir /tmp/demo/data --topic demo-trades
    python infra/page.py --host 0.0.0.0                   # reachable from other machines (no authentication!)

It binds 127.0.0.1 unless --host says otherwise. Ctrl-C or SIGTERM stops it.
Exit codes: 0 stopped; 2 a bad flag, a data folder that does not exist, or a port already in use.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
from pathlib import Path

from lakehouse.common.logs import configure_logging
from lakehouse.defaults import DATA_DIR, LOCAL_BOOTSTRAP, TOPIC
from lakehouse.observe import status
from lakehouse.page.live import DEFAULT_KEEP_MINUTES

DEFAULT_PORT = 8500
DEFAULT_LOOKBACK_MIN = 15.0

log = logging.getLogger("page")


def port_problem(host: str, port: int) -> str | None:
    """Why the server cannot listen on host:port (in use, or not an address of this machine); None when it can."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
    except OSError as exc:
        if exc.errno == 98:  # EADDRINUSE
            from lakehouse.common.daemon import port_owner

            return f"port {port} on {host} is already in use by {port_owner(port)}; choose another with --port"
        return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    return None


def url_of(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    return f"http://{f'[{shown}]' if ':' in shown else shown}:{port}/"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path(DATA_DIR),
                        help="the pipeline's data folder: Gold and the status files (default %(default)s)")
    parser.add_argument("--bootstrap", default=LOCAL_BOOTSTRAP, help="Kafka bootstrap servers (default %(default)s)")
    parser.add_argument("--topic", default=TOPIC, help="the trades topic (default %(default)s)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default %(default)s: this machine only; 0.0.0.0 exposes it)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default %(default)s)")
    parser.add_argument("--lookback", type=float, default=DEFAULT_LOOKBACK_MIN, metavar="MINUTES",
                        help="at start, read the topic from this many minutes back by Kafka time (default "
                             "%(default)s): the minutes Gold may not hold yet")
    parser.add_argument("--keep-minutes", type=int, default=DEFAULT_KEEP_MINUTES,
                        help="live bars kept per pair, in minutes of trade time (default %(default)s)")
    parser.add_argument("--status-dir", type=Path, help="the status files (default $LAKEHOUSE_STATUS_DIR, else "
                                                        "<data-dir>/status)")
    args = parser.parse_args(argv)
    if not 1 <= args.port <= 65535:
        parser.error(f"argument --port: {args.port} is not a port (1..65535)")
    if args.lookback < 0 or args.keep_minutes < 1:
        parser.error("--lookback must be >= 0 and --keep-minutes >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging()
    if not args.data_dir.is_dir():
        print(f"error: the data folder {args.data_dir} does not exist: start the pipeline first (make run, make demo)"
              f" or point --data-dir at the folder it writes to", file=sys.stderr)
        return 2
    problem = port_problem(args.host, args.port)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    import uvicorn

    from lakehouse.page.app import PageState, make_app

    status_dir = args.status_dir or (Path(os.environ[status.ENV_DIR]) if os.environ.get(status.ENV_DIR)
                                     else args.data_dir / "status")
    status.set_dir(status_dir)
    url = url_of(args.host, args.port)
    state = PageState(args.data_dir, args.bootstrap, args.topic, args.lookback * 60, args.keep_minutes, status_dir,
                      url)
    state.start()
    server = uvicorn.Server(uvicorn.Config(make_app(state), host=args.host, port=args.port, log_level="warning",
                                          access_log=False, lifespan="off"))
    log.info("page at %s (Gold %s, topic %s at %s)", url, state.gold.path, args.topic, args.bootstrap)
    # uvicorn handles SIGINT/SIGTERM while it runs (a graceful shutdown), then raises the signal again for the
    # handler found before it: with these, that ends here and the server exits 0, as a stop on request should
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda _signum, _frame: None)
    try:
        server.run()
    finally:
        state.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
