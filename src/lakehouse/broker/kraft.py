"""Apache Kafka nodes in KRaft mode from Maven Central jars: what the single broker and the 3-broker cluster share.

The jars (fetched once with Maven into .cache/kafka/<version>), the Java check, each node's server.properties, its
storage format, command line, readiness and pid file. lakehouse.broker.local (infra/kafka/broker.py) runs one
combined broker+controller node; lakehouse.cluster.local (infra/cluster.py) runs three brokers and three controllers.
Standard library only (runs before any virtualenv).

Usage (a library; the smallest example prints a cluster broker's configuration):
    python3 -c "from lakehouse.broker import kraft; \
print(kraft.render_properties(kraft.node_properties(1, 'broker', '101@127.0.0.1:19093', '/tmp/k', port=19092)))"
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Callable

from lakehouse.common.daemon import Daemon, InfraError, port_is_open
from lakehouse.defaults import REPO_ROOT

KAFKA_VERSION = "3.9.1"  # must match <kafka.version> in infra/kafka/pom.xml
POM = REPO_ROOT / "infra" / "kafka" / "pom.xml"
DEFAULT_JARS_DIR = REPO_ROOT / ".cache" / "kafka" / KAFKA_VERSION / "libs"
READY_LINE = "Kafka Server started"
# A short-lived tool (the storage format) and the controllers, which do little work: the C1 compiler only, which
# halves their start-up CPU on a small machine.
LIGHT_JIT = "-XX:TieredStopAtLevel=1"
TOOL_JVM_FLAGS = ["-Xmx256m", LIGHT_JIT, "-XX:+UseSerialGC", "-Djava.awt.headless=true"]  # logged by brokers and controllers alike once start-up is complete

LOG4J_PROPERTIES = """\
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.org.apache.kafka.controller=WARN
"""


def jvm_flags(min_heap: str, max_heap: str) -> list[str]:
    """The defaults of kafka-run-class.sh, with the heap given (sized for a laptop or a 2-core CI box)."""
    return [f"-Xms{min_heap}", f"-Xmx{max_heap}", "-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
            "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent", "-Djava.awt.headless=true"]


def new_cluster_id(random_bytes: Callable[[], bytes] = lambda: uuid.uuid4().bytes) -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding (what `kafka-storage random-uuid` prints).
    Like Kafka's Uuid.randomUuid, never one starting with "-" (1 in 64 would): kafka-storage's argument parser would
    take `--cluster-id -x...` for a missing value."""
    while True:
        text = base64.urlsafe_b64encode(random_bytes()).rstrip(b"=").decode()
        if not text.startswith("-"):
            return text


def java_major_version(version_output: str) -> int | None:
    """The major version from `java -version` output: '17.0.15' -> 17, '1.8.0_392' -> 8."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def find_java(what: str = "the Kafka broker") -> str:
    """The java binary to use (JAVA_HOME first, then PATH); refuses anything older than 17."""
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not java or not Path(java).exists():
        raise InfraError("Java not found: install a Java 17 JDK/JRE (e.g. apt-get install openjdk-17-jre-headless) "
                         "or set JAVA_HOME", code=2)
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    major = java_major_version(out)
    if major is None or major < 17:
        raise InfraError(f"{java} is Java {major or '?'}; {what} here needs Java 17 or newer", code=2)
    return java


def ensure_jars(jars_dir: Path = DEFAULT_JARS_DIR) -> Path:
    """Download the broker's jars with Maven on first use; later calls reuse the cache."""
    if jars_dir.is_dir() and any(jars_dir.glob(f"kafka_2.13-{KAFKA_VERSION}.jar")):
        return jars_dir
    mvn = shutil.which("mvn")
    if not mvn:
        raise InfraError("Maven (mvn) not found: it fetches the Kafka jars from Maven Central on first use "
                         "(apt-get install maven)", code=2)
    print(f"fetching Apache Kafka {KAFKA_VERSION} jars from Maven Central into {jars_dir} ...", flush=True)
    tmp_dir = jars_dir.with_name(jars_dir.name + ".partial")
    shutil.rmtree(tmp_dir, ignore_errors=True)
    cmd = [mvn, "-q", "-B", "-f", str(POM), f"-Dkafka.version={KAFKA_VERSION}", "dependency:copy-dependencies",
           "-DincludeScope=runtime", f"-DoutputDirectory={tmp_dir}"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise InfraError(f"Maven could not fetch the Kafka jars:\n{result.stdout[-3000:]}{result.stderr[-2000:]}")
    shutil.rmtree(jars_dir, ignore_errors=True)
    tmp_dir.rename(jars_dir)
    return jars_dir


# ---------------------------------------------------------------------------------------------------------------------
# server.properties


def node_properties(node_id: int, roles: str, voters: str, log_dirs: Path | str, *, port: int | None = None,
                    controller_port: int | None = None) -> dict[str, str]:
    """The KRaft plumbing of one node: its roles ("broker", "controller" or both), the static quorum
    (`id@host:port,...`: works unchanged on Kafka 3.9 and 4.x), its listeners and its log folder."""
    listeners = ([f"PLAINTEXT://127.0.0.1:{port}"] if port else []) + \
        ([f"CONTROLLER://127.0.0.1:{controller_port}"] if controller_port else [])
    props = {
        "process.roles": roles,
        "node.id": str(node_id),
        "controller.quorum.voters": voters,
        "listeners": ",".join(listeners),
    }
    if port:
        props["advertised.listeners"] = f"PLAINTEXT://localhost:{port}"
    props["listener.security.protocol.map"] = "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
    props["controller.listener.names"] = "CONTROLLER"
    if port:
        props["inter.broker.listener.name"] = "PLAINTEXT"
    props["log.dirs"] = str(log_dirs)
    return props


def topic_defaults(replicas: int, min_insync: int, internal_partitions: int) -> dict[str, str]:
    """Defaults for topics, the internal ones included: `replicas` copies of each partition, and acks=all writes
    refused (NOT_ENOUGH_REPLICAS) when fewer than `min_insync` are in sync. Controllers need these too: a topic
    created without a replication factor gets the controller's default."""
    return {
        # Like Redpanda's dev-container mode: topics are created on first use.
        "auto.create.topics.enable": "true",
        "num.partitions": "1",
        "default.replication.factor": str(replicas),
        "min.insync.replicas": str(min_insync),
        "offsets.topic.replication.factor": str(replicas),
        "offsets.topic.num.partitions": str(internal_partitions),
        "transaction.state.log.replication.factor": str(replicas),
        "transaction.state.log.min.isr": str(min_insync),
        "transaction.state.log.num.partitions": str(internal_partitions),
        "share.coordinator.state.topic.replication.factor": str(replicas),  # 4.x share groups; 3.9 ignores it
        "share.coordinator.state.topic.min.isr": str(min_insync),
        "group.initial.rebalance.delay.ms": "0",
        # Keep the raw trades a week by default (the Bronze job can be down a while without losing data).
        "log.retention.hours": "168",
    }


def render_properties(props: dict[str, str]) -> str:
    return "".join(f"{key}={value}\n" for key, value in props.items())


def parse_properties(text: str) -> dict[str, str]:
    """key=value lines of a .properties file (comments and blank lines skipped)."""
    return dict(line.split("=", 1) for line in text.splitlines() if line.strip() and not line.startswith("#"))


# ---------------------------------------------------------------------------------------------------------------------
# One node


class KafkaNode:
    """One Kafka JVM (a broker, a controller or both) and its folder: server.properties, log4j.properties, the KRaft
    log dir (kraft-logs/), its console log under logs/ and its pid file."""

    def __init__(self, name: str, data_dir: Path, properties: dict[str, str], *, cluster_id_file: Path,
                 heap: tuple[str, str], jars_dir: Path = DEFAULT_JARS_DIR, pid_file_name: str = "node.pid",
                 log_file_name: str = "server.out", extra_jvm_flags: tuple[str, ...] = ()) -> None:
        self.name = name
        self.data_dir = data_dir.resolve()
        self.properties = properties
        self.cluster_id_file = cluster_id_file
        self.heap = heap
        self.jars_dir = jars_dir
        self.extra_jvm_flags = extra_jvm_flags
        self.config_file = self.data_dir / "server.properties"
        self.daemon = Daemon(name, self.data_dir / pid_file_name, self.data_dir / "logs" / log_file_name,
                             markers=(str(self.config_file),))

    @property
    def node_id(self) -> int:
        return int(self.properties["node.id"])

    @property
    def ports(self) -> list[int]:
        """The ports this node listens on: the client port first (brokers), then the controller port."""
        return [int(url.rsplit(":", 1)[1]) for url in self.properties["listeners"].split(",")]

    @property
    def log_file(self) -> Path:
        return self.daemon.log_file

    def running_pid(self) -> int | None:
        return self.daemon.running_pid()

    def java_command(self, java: str, *args: str) -> list[str]:
        return [java, *jvm_flags(*self.heap), *self.extra_jvm_flags, f"-Dkafka.logs.dir={self.data_dir / 'logs'}",
                f"-Dlog4j.configuration=file:{self.data_dir / 'log4j.properties'}", "-cp", f"{self.jars_dir}/*", *args]

    def server_command(self, java: str) -> list[str]:
        return self.java_command(java, "kafka.Kafka", str(self.config_file))

    def launch(self, java: str) -> subprocess.Popen:
        """Write the configuration, format the storage on first use, start the JVM (returns at once)."""
        format_storages([self], java)
        return self.start_server(java)

    def write_files(self) -> None:
        (self.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(render_properties(self.properties))
        (self.data_dir / "log4j.properties").write_text(LOG4J_PROPERTIES)

    def start_server(self, java: str) -> subprocess.Popen:
        return self.daemon.start(self.server_command(java), cwd=self.data_dir)

    def format_command(self, java: str) -> list[str] | None:
        """The command that formats the KRaft log dir; None once it is formatted (which saves a JVM start on every
        later start; --ignore-formatted would keep an existing one, and its data, as it is anyway)."""
        if (Path(self.properties["log.dirs"]) / "meta.properties").exists():
            return None
        return [java, *TOOL_JVM_FLAGS, f"-Dlog4j.configuration=file:{self.data_dir / 'log4j.properties'}",
                "-cp", f"{self.jars_dir}/*", "kafka.tools.StorageTool", "format", "-t", self._cluster_id(),
                "-c", str(self.config_file), "--ignore-formatted"]

    def _cluster_id(self) -> str:
        """The cluster id, made once and kept beside the data (a re-format must reuse it; all nodes share it)."""
        if not self.cluster_id_file.exists():
            self.cluster_id_file.parent.mkdir(parents=True, exist_ok=True)
            self.cluster_id_file.write_text(new_cluster_id())
        return self.cluster_id_file.read_text().strip()

    def is_ready(self) -> bool:
        return port_is_open(self.ports[0]) and READY_LINE in self.daemon.log_since_start()

    def wait_ready(self, timeout: float, proc: subprocess.Popen | None = None) -> None:
        self.daemon.wait_ready(self.is_ready, timeout, proc)


def format_storages(nodes: list[KafkaNode], java: str) -> None:
    """Write each node's files and format the storages not formatted yet, all at once (one short JVM each)."""
    for node in nodes:
        node.write_files()
    running = [(node, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
               for node in nodes if (cmd := node.format_command(java))]
    for node, proc in running:
        output = proc.communicate()[0]
        if proc.returncode != 0:
            raise InfraError(f"formatting the storage of {node.name} failed:\n{output[-3000:]}")
