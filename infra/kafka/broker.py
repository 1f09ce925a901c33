"""A real single-node Apache Kafka broker (KRaft mode) from Maven Central jars, for machines without Docker.

It listens where the Redpanda compose file does (localhost:19092), so every other command in the README is the same
on both paths. Only the standard library is used, so it runs before any virtualenv exists.

Usage:
    python3 infra/kafka/broker.py up        # fetch jars on first use, format storage, start, wait until ready
    python3 infra/kafka/broker.py status    # exit 0 when a broker answers on the port
    python3 infra/kafka/broker.py down      # stop it cleanly (SIGTERM, then SIGKILL after a timeout)
    python3 infra/kafka/broker.py fetch     # only download the jars (make setup does this)

    # a second, independent broker (tests use one to simulate an outage without touching the main one)
    python3 infra/kafka/broker.py up --port 29192 --controller-port 29193 --data-dir /tmp/broker-b

`up` is idempotent: when this broker is already running it says so and returns 0. Data, logs and the pid file live
under --data-dir (default data/broker, git-ignored); the jars are cached under .cache/kafka/<version> (git-ignored).

Exit codes: 0 ok, 1 the broker failed to start or stop (its log tail is printed), 2 a usage or environment error
(no Java 17+, no Maven, port already taken by something else).
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
KAFKA_VERSION = "3.9.1"  # must match <kafka.version> in infra/kafka/pom.xml
POM = Path(__file__).with_name("pom.xml")
DEFAULT_JARS_DIR = REPO_ROOT / ".cache" / "kafka" / KAFKA_VERSION / "libs"
DEFAULT_DATA_DIR = REPO_ROOT / "data" / "broker"
DEFAULT_PORT = 19092
DEFAULT_CONTROLLER_PORT = 19093
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0
READY_LINE = "Kafka Server started"

JVM_FLAGS = [
    # The defaults of kafka-run-class.sh, with a heap sized for a laptop or a 2-core CI box.
    "-Xms256m", "-Xmx768m", "-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent", "-Djava.awt.headless=true",
]

LOG4J_PROPERTIES = """\
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.org.apache.kafka.controller=WARN
"""


class BrokerError(Exception):
    """A failure the user can act on; the message says what to do. `code` is the exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def server_properties(port: int, controller_port: int, log_dirs: Path) -> str:
    """The broker's configuration: one combined broker+controller node with a static quorum (works on 3.9 and 4.x)."""
    return f"""\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller_port}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://localhost:{port}
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs={log_dirs}
# Like Redpanda's dev-container mode: topics are created on first use.
auto.create.topics.enable=true
num.partitions=1
# A single node cannot hold three replicas of the internal topics.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# Keep the raw trades a week by default (the Bronze job can be down a while without losing data).
log.retention.hours=168
"""


def new_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding (what `kafka-storage random-uuid` prints)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


def java_major_version(version_output: str) -> int | None:
    """The major version from `java -version` output: '17.0.15' -> 17, '1.8.0_392' -> 8."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def find_java() -> str:
    """The java binary to use (JAVA_HOME first, then PATH); refuses anything older than 17."""
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not java or not Path(java).exists():
        raise BrokerError("Java not found: install a Java 17 JDK/JRE (e.g. apt-get install openjdk-17-jre-headless) "
                          "or set JAVA_HOME", code=2)
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    major = java_major_version(out)
    if major is None or major < 17:
        raise BrokerError(f"{java} is Java {major or '?'}; the Kafka broker here needs Java 17 or newer", code=2)
    return java


def port_is_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def ensure_jars(jars_dir: Path) -> Path:
    """Download the broker's jars with Maven on first use; later calls reuse the cache."""
    if jars_dir.is_dir() and any(jars_dir.glob(f"kafka_2.13-{KAFKA_VERSION}.jar")):
        return jars_dir
    mvn = shutil.which("mvn")
    if not mvn:
        raise BrokerError("Maven (mvn) not found: it fetches the Kafka jars from Maven Central on first use "
                          "(apt-get install maven)", code=2)
    print(f"fetching Apache Kafka {KAFKA_VERSION} jars from Maven Central into {jars_dir} ...", flush=True)
    tmp_dir = jars_dir.with_name(jars_dir.name + ".partial")
    shutil.rmtree(tmp_dir, ignore_errors=True)
    cmd = [mvn, "-q", "-B", "-f", str(POM), f"-Dkafka.version={KAFKA_VERSION}", "dependency:copy-dependencies",
           "-DincludeScope=runtime", f"-DoutputDirectory={tmp_dir}"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise BrokerError(f"Maven could not fetch the Kafka jars:\n{result.stdout[-3000:]}{result.stderr[-2000:]}")
    shutil.rmtree(jars_dir, ignore_errors=True)
    tmp_dir.rename(jars_dir)
    return jars_dir


class Broker:
    """One broker instance: its ports, its data folder and the files in it."""

    def __init__(self, port: int, controller_port: int, data_dir: Path, jars_dir: Path) -> None:
        self.port = port
        self.controller_port = controller_port
        self.data_dir = data_dir.resolve()
        self.jars_dir = jars_dir
        self.pid_file = self.data_dir / "broker.pid"
        self.log_file = self.data_dir / "logs" / "broker.out"
        self.config_file = self.data_dir / "server.properties"

    def running_pid(self) -> int | None:
        """The pid in the pid file when that process is alive and is a Kafka JVM; else None."""
        try:
            pid = int(self.pid_file.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        return pid if b"kafka.Kafka" in cmdline else None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no broker log)"

    def up(self) -> None:
        pid = self.running_pid()
        if pid and port_is_open(self.port):
            print(f"broker already running (pid {pid}) on localhost:{self.port}")
            return
        for port in (self.port, self.controller_port):
            if port_is_open(port):
                raise BrokerError(f"port {port} is already in use by another process; stop it (is the Redpanda "
                                  f"container up? `docker compose -f infra/docker-compose.yml down`) or choose "
                                  f"another --port/--controller-port", code=2)
        java = find_java()
        jars = ensure_jars(self.jars_dir)
        self._write_config()
        self._format_storage(java, jars)
        self._wait_ready(self._start(java, jars))
        print(f"broker ready on localhost:{self.port} (pid {self.running_pid()}; log {self.log_file})")

    def _write_config(self) -> None:
        (self.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(server_properties(self.port, self.controller_port, self.data_dir / "kraft-logs"))
        (self.data_dir / "log4j.properties").write_text(LOG4J_PROPERTIES)

    def _java_cmd(self, java: str, jars: Path, *args: str) -> list[str]:
        return [java, *JVM_FLAGS, f"-Dkafka.logs.dir={self.data_dir / 'logs'}",
                f"-Dlog4j.configuration=file:{self.data_dir / 'log4j.properties'}",
                "-cp", f"{jars}/*", *args]

    def _cluster_id(self) -> str:
        """This broker's cluster id, made once and kept beside its data (a re-format must reuse it)."""
        id_file = self.data_dir / "cluster.id"
        if not id_file.exists():
            id_file.write_text(new_cluster_id())
        return id_file.read_text().strip()

    def _format_storage(self, java: str, jars: Path) -> None:
        """Format the log directory once; --ignore-formatted keeps an existing one (and its data) as it is."""
        cmd = self._java_cmd(java, jars, "kafka.tools.StorageTool", "format", "-t", self._cluster_id(),
                             "-c", str(self.config_file), "--ignore-formatted")
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise BrokerError(f"formatting the broker storage failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")

    def _start(self, java: str, jars: Path) -> subprocess.Popen:
        cmd = self._java_cmd(java, jars, "kafka.Kafka", str(self.config_file))
        self.log_file.write_bytes(b"")  # readiness is read from this run's log only
        with open(self.log_file, "ab") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, cwd=self.data_dir)
        self.pid_file.write_text(str(proc.pid))
        return proc

    def _wait_ready(self, proc: subprocess.Popen) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise BrokerError(f"the broker exited during start-up; last lines of {self.log_file}:\n"
                                  f"{self.log_tail()}")
            if port_is_open(self.port) and READY_LINE in self.log_tail(400):
                return
            time.sleep(0.25)
        raise BrokerError(f"the broker did not become ready within {READY_TIMEOUT_S:.0f}s; last lines of "
                          f"{self.log_file}:\n{self.log_tail()}")

    def down(self) -> None:
        pid = self.running_pid()
        if pid is None:
            print("broker not running")
            self.pid_file.unlink(missing_ok=True)
            return
        os.kill(pid, signal.SIGTERM)  # a controlled shutdown: Kafka flushes its logs and closes cleanly
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while time.monotonic() < deadline and self.running_pid() is not None:
            time.sleep(0.2)
        if self.running_pid() is not None:
            os.kill(pid, signal.SIGKILL)
            print(f"broker (pid {pid}) did not stop within {STOP_TIMEOUT_S:.0f}s; killed it", file=sys.stderr)
        else:
            print(f"broker stopped (pid {pid})")
        self.pid_file.unlink(missing_ok=True)

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
    except BrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
