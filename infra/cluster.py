"""A local 3-broker Apache Kafka cluster (KRaft) and a Spark standalone cluster: start, stop, inspect and break them.
The entry point; the code is lakehouse.cluster.local (src/lakehouse/cluster/local.py).

Usage:
    python infra/cluster.py up                   # make cluster-up: start what is not running, wait until ready
    python infra/cluster.py status [--json]      # make cluster-status: pid, port, alive per process; exit 1 if not all up
    python infra/cluster.py down                 # make cluster-down: SIGTERM, SIGKILL after 30 s; the data stays
    python infra/cluster.py kill broker-2        # kill -9 one process: broker-N, controller-N, master, worker-N
    python infra/cluster.py start broker-2       # start it again; waits until the broker is back in every ISR
    python infra/cluster.py stop worker-2        # stop one process cleanly
    python infra/cluster.py leaders crypto.trades  # JSON: per partition its leader, replicas and in-sync replicas
"""

from lakehouse.cluster.local import main

if __name__ == "__main__":
    raise SystemExit(main())
