"""A real single-node Apache Kafka broker (KRaft mode) from Maven Central jars, for machines without Docker.

It listens where the Redpanda compose file does (localhost:19092), so every other command in the README is the same
on both paths. Only the standard library is used, so it runs before any virtualenv exists.

Usage (examples in the entry point's docstring, infra/kafka/broker.py):
    python3 infra/kafka/broker.py --help

`up` is idempotent: when this broker is already running it says so and returns 0. Data, logs and the pid file live
under --data-dir (default data/broker, git-ignored); the jars are cached under .cache/kafka/<version> (git-ignored).

Exit codes: 0 ok, 1 the broker failed to start or stop (its log tail is printed), 2 a usage or environment error
(no Java 17+, no Maven, a port already taken: the message says by what, e.g. the 3-broker cluster of
`make cluster-up`, and how to stop it).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from lakehouse.broker.kraft import (  # noqa: F401  (java_major_version, new_cluster_id: part of this module's API)
    DEFAULT_JARS_DIR, KafkaNode, ensure_jars, find_java, java_major_version, new_cluster_id,
    node_properties, render_properties, topic_defaults)
from lakehouse.common.daemon import DEFAULT_BROKER_DIR, InfraError, port_is_open, port_owner

DEFAULT_DATA_DIR = DEFAULT_BROKER_DIR
DEFAULT_PORT = 19092
DEFAULT_CONTROLLER_PORT = 19093
HEAP = ("256m", "768m")
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0


def broker_properties(port: int, controller_port: int, log_dirs: Path) -> dict[str, str]:
    """The broker's configuration: one combined broker+controller node with a static quorum (works on 3.9 and 4.x);
    a single node holds one copy of every topic, the internal ones included."""
    return {
        **node_properties(1, "broker,controller", f"1@127.0.0.1:{controller_port}", log_dirs, port=port,
                          controller_port=controller_port),
        **topic_defaults(replicas=1, min_insync=1, internal_partitions=1),
    }


def server_properties(port: int, controller_port: int, log_dirs: Path) -> str:
    return render_properties(broker_properties(port, controller_port, log_dirs))


class Broker:
    """One broker instance: its ports, its data folder and the files in it (broker.pid, logs/broker.out, ...)."""

    def __init__(self, port: int, controller_port: int, data_dir: Path, jars_dir: Path) -> None:
        self.port = port
        self.controller_port = controller_port
        self.data_dir = data_dir.resolve()
        self.jars_dir = jars_dir
        self.node = KafkaNode("the broker", self.data_dir,
                              broker_properties(port, controller_port, self.data_dir / "kraft-logs"),
                              cluster_id_file=self.data_dir / "cluster.id", heap=HEAP, jars_dir=jars_dir,
                              pid_file_name="broker.pid", log_file_name="broker.out")

    def running_pid(self) -> int | None:
        return self.node.running_pid()

    def up(self) -> None:
        pid = self.running_pid()
        if pid and port_is_open(self.port):
            print(f"broker already running (pid {pid}) on localhost:{self.port}")
            return
        for port in (self.port, self.controller_port):
            if port_is_open(port):
                raise InfraError(f"port {port} is already in use by {port_owner(port)}. "
                                 f"Or choose another --port/--controller-port.", code=2)
        java = find_java()
        ensure_jars(self.jars_dir)
        self.node.wait_ready(READY_TIMEOUT_S, self.node.launch(java))
        print(f"broker ready on localhost:{self.port} (pid {self.running_pid()}; log {self.node.log_file})")

    def down(self) -> None:
        pid, killed = self.node.daemon.stop(STOP_TIMEOUT_S)
        if pid is None:
            print("broker not running")
        elif killed:
            print(f"broker (pid {pid}) did not stop within {STOP_TIMEOUT_S:.0f}s; killed it", file=sys.stderr)
        else:
            print(f"broker stopped (pid {pid})")

    def status(self) -> bool:
        pid = self.running_pid()
        up = pid is not None and port_is_open(self.port)
        print(f"broker {'running (pid %d)' % pid if up else 'not running'} on localhost:{self.port}")
        return up


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["up", "down", "status", "fetch"])
    parser.add_argument("--port", type=int, default=int(os.environ.get("KAFKA_PORT", DEFAULT_PORT)),
                        help="client port (default %(default)s, env KAFKA_PORT)")
    parser.add_argument("--controller-port", type=int,
                        default=int(os.environ.get("KAFKA_CONTROLLER_PORT", DEFAULT_CONTROLLER_PORT)),
                        help="KRaft controller port (default %(default)s)")
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("KAFKA_DATA_DIR", DEFAULT_DATA_DIR)),
                        help="data, logs and pid file (default %(default)s)")
    parser.add_argument("--jars-dir", type=Path, default=DEFAULT_JARS_DIR, help="cached Kafka jars (default %(default)s)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    broker = Broker(args.port, args.controller_port, args.data_dir, args.jars_dir)
    try:
        if args.command == "up":
            broker.up()
        elif args.command == "down":
            broker.down()
        elif args.command == "fetch":
            ensure_jars(args.jars_dir)
        else:
            return 0 if broker.status() else 1
    except InfraError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
