"""What `make mutants` mutates: the pure core, as paths under src/ (lakehouse/...: the modules the tests import),
and the unit tests it runs against each mutant (mutmut runs only the tests that call the mutated function).

Left out on purpose: the Hypothesis fuzz test (40 s per mutant of the parsing code; the tests below check the same
functions with exact values) and the unit test that starts a local Spark session (test_gold_minute_sums.py: 15 s per
mutant). What only Spark runs (the jobs' DataFrame code) is covered by the integration tests, not measured here."""

PATHS = [
    "lakehouse/producer/records.py",   # the producer's parsing, pair translation, timestamps, decimals
    "lakehouse/producer/protocol.py",  # frames: v1/v2 classification, subscription acks and errors
    "lakehouse/producer/resume.py",    # resume from the topic: scan windows, newest trade_id per pair
    "lakehouse/producer/gaps.py",      # gaps: id ranges, the gap book, undelivered records
    "lakehouse/producer/rest.py",      # Kraken REST replies
    "lakehouse/bronze/audit.py",       # the Bronze audit's offset arithmetic
    "lakehouse/silver/audit.py",       # the Silver audit's id ranges, holes and doubles
    "lakehouse/gold/chart.py",         # the chart: values in the table, scales, spans
    "lakehouse/gold/bars.py",          # exact bars: limbs, VWAP, order keys, folding, the writer's book of open bars
    "lakehouse/page/trades.py",        # the live page's trade rules (Silver's, in plain Python)
]
TESTS = [
    "tests/unit/test_kraken_producer.py",
    "tests/unit/test_kraken_resume.py",
    "tests/unit/test_kraken_backfill.py",
    "tests/unit/test_bronze_audit.py",
    "tests/unit/test_silver_completeness_audit.py",
    "tests/unit/test_gold_ohlcv.py",
    "tests/unit/test_gold_bars.py",
    "tests/unit/test_page_live.py",
]
