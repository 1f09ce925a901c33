"""A real single-node Apache Kafka broker (KRaft mode) from Maven Central jars, for machines without Docker: its
entry point. The broker's code is lakehouse.broker.local (src/lakehouse/broker/local.py); standard library only, so
`make broker-up` runs it with the system's python3 before any virtualenv exists (PYTHONPATH=src, see the Makefile).

Usage:
    python3 infra/kafka/broker.py up        # fetch jars on first use, format storage, start, wait until ready
    python3 infra/kafka/broker.py status    # exit 0 when a broker answers on the port
    python3 infra/kafka/broker.py down      # stop it cleanly (SIGTERM, then SIGKILL after a timeout)
    python3 infra/kafka/broker.py fetch     # only download the jars (make setup does this)

    # a second, independent broker (tests use one to simulate an outage without touching the main one)
    python3 infra/kafka/broker.py up --port 29192 --controller-port 29193 --data-dir /tmp/broker-b
"""

from lakehouse.broker.local import main

if __name__ == "__main__":
    raise SystemExit(main())
