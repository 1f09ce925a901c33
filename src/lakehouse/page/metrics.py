"""GET /metrics: Prometheus text (prometheus-client) from the same status the page shows, read at scrape time, and
the page server's own figures.

From the status files (lakehouse.observe), per layer (label layer="bronze|silver|gold"):
  lakehouse_layer_up                    1 when healthy (running or starting), else 0
  lakehouse_layer_batch_id              the last batch's id
  lakehouse_layer_batch_duration_seconds
  lakehouse_layer_input_rows            rows of the last batch
  lakehouse_layer_rows_per_second
  lakehouse_layer_lag                   how far behind its input, label unit="offsets|files|versions"
  lakehouse_layer_last_commit_age_seconds
  lakehouse_layer_table_version         Bronze's newest batch, Silver's and Gold's newest Delta version
the producer's counters lakehouse_producer_{trades,gaps,reconnects,malformed,delivered}_total (they restart from 0
with the producer, which Prometheus' rate() handles), lakehouse_producer_undelivered (a gauge), and
lakehouse_pipeline_healthy (1 healthy or starting, 0 unhealthy or nothing running).
The page server's own: lakehouse_page_records_total, lakehouse_page_bad_records_total{reason},
lakehouse_page_live_trades_total, lakehouse_page_gold_mismatch_total (a live bar Gold holds as many trades of but
other values: never expected) and two trade -> bar latency histograms:
  lakehouse_live_bar_latency_seconds    per trade, from its ts_ingest to its live bar (this server)
  lakehouse_gold_bar_latency_seconds    per Gold write, from the ts_ingest of its oldest trade to the write (the Gold
                                        writer's status: written_at_us - oldest_ingest_us)
"""

from __future__ import annotations

from typing import Any, Callable

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

disable_created_metrics()  # no *_created series: they double the output and nothing here reads them

LATENCY_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
LAYERS = ("bronze", "silver", "gold")
PRODUCER_COUNTERS = ("trades", "gaps", "reconnects", "malformed", "delivered")


def status_families(report: dict[str, Any]) -> list:
    """The status report as metric families (pure: a report in, families out)."""
    def gauge(name: str, doc: str, labels: list[str] | None = None) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, doc, labels=labels or ["layer"])

    up = gauge("lakehouse_layer_up", "1 when the layer is running or starting and keeping up")
    batch = gauge("lakehouse_layer_batch_id", "the layer's last micro-batch id")
    duration = gauge("lakehouse_layer_batch_duration_seconds", "the last micro-batch's duration")
    rows = gauge("lakehouse_layer_input_rows", "rows of the last micro-batch")
    rate = gauge("lakehouse_layer_rows_per_second", "rows processed per second in the last micro-batch")
    lag = gauge("lakehouse_layer_lag", "how far behind its input the layer is", ["layer", "unit"])
    age = gauge("lakehouse_layer_last_commit_age_seconds", "seconds since the layer's last batch ended")
    version = gauge("lakehouse_layer_table_version", "Bronze's newest batch, Silver's and Gold's Delta version")
    families = [up, batch, duration, rows, rate, lag, age, version]
    comps = {c["name"]: c for c in report.get("components", [])}
    for layer in LAYERS:
        c = comps.get(layer)
        if c is None:
            continue
        up.add_metric([layer], 1.0 if c.get("healthy") and c["state"] in ("running", "starting") else 0.0)
        details = c.get("details") or {}
        for family, value in ((batch, c.get("batch")), (rate, c.get("rows_per_s")),
                              (rows, details.get("input_rows")), (age, c.get("last_batch_age_s")),
                              (version, c.get("table_version"))):
            if value is not None:
                family.add_metric([layer], float(value))
        if details.get("batch_duration_ms") is not None:
            duration.add_metric([layer], details["batch_duration_ms"] / 1000)
        if c.get("behind") is not None:
            lag.add_metric([layer, c["behind_unit"]], float(c["behind"]))
    producer = comps.get("producer")
    if producer is not None:
        details = producer.get("details") or {}
        for name in PRODUCER_COUNTERS:
            if details.get(name) is not None:
                counter = CounterMetricFamily(f"lakehouse_producer_{name}", f"the producer's {name} since it started")
                counter.add_metric([], float(details[name]))
                families.append(counter)
        undelivered = GaugeMetricFamily("lakehouse_producer_undelivered", "trades the producer holds undelivered")
        undelivered.add_metric([], float(details.get("undelivered", 0)))
        families.append(undelivered)
    healthy = GaugeMetricFamily("lakehouse_pipeline_healthy", "1 when make status would exit 0")
    healthy.add_metric([], 1.0 if report.get("exit_code") == 0 else 0.0)
    families.append(healthy)
    return families


class StatusCollector:
    """A prometheus-client collector calling `report()` at each scrape."""

    def __init__(self, report: Callable[[], dict[str, Any]]) -> None:
        self.report = report

    def collect(self):
        yield from status_families(self.report())


class PageMetrics:
    """The server's registry: the status collector and the page's own counters and histograms."""

    def __init__(self, report: Callable[[], dict[str, Any]]) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(StatusCollector(report))
        r = self.registry
        self.records = Counter("lakehouse_page_records", "topic records the page server read", registry=r)
        self.bad = Counter("lakehouse_page_bad_records", "records skipped: not a valid trade", ["reason"], registry=r)
        self.live_trades = Counter("lakehouse_page_live_trades", "trades folded into live bars", registry=r)
        self.mismatch = Counter("lakehouse_page_gold_mismatch", "bars Gold holds with the live bar's trade count "
                                "but other values", registry=r)
        self.live_latency = Histogram("lakehouse_live_bar_latency_seconds", "trade ts_ingest -> its live bar",
                                      buckets=LATENCY_BUCKETS, registry=r)
        self.gold_latency = Histogram("lakehouse_gold_bar_latency_seconds", "oldest trade's ts_ingest -> its Gold "
                                      "write", buckets=LATENCY_BUCKETS, registry=r)
        self.gold_written_seen: int | None = None

    def observe_gold_write(self, gold_record: dict[str, Any] | None) -> None:
        """Once per Gold write (the writer's status changes written_at_us): its oldest trade's latency."""
        if not gold_record:
            return
        written, oldest = gold_record.get("written_at_us"), gold_record.get("oldest_ingest_us")
        if isinstance(written, int) and isinstance(oldest, int) and written != self.gold_written_seen:
            self.gold_written_seen = written
            self.gold_latency.observe(max(0.0, (written - oldest) / 1e6))
