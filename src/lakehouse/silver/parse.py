"""Bronze records -> Silver trades and quarantine rows: the checks, the exact values, the in-batch deduplication and
the conditions the Silver job's MERGEs are pruned by. DataFrame transforms only (no I/O); lakehouse.silver.job runs
them.

Every Bronze record ends up as a trade or as a quarantine row with the first problem found, in this order: its
bytes, its JSON, a required field, then each field's format and range. Reasons are human-readable: "not valid
UTF-8", "not JSON", "missing field price", "price 'abc' is not a decimal", "size '0.0000000000000000001' does not fit
decimal(38,18)", "side 'hold' is not buy or sell", "ts_event '2099-...' is more than 3600 s after its ts_ingest ...".

Exact values. price and size must be exact decimal(38,18): 20 integer and 18 fractional digits. Spark's cast to
decimal ROUNDS extra fractional digits, so the text itself is checked first: a value goes to Silver only when its
digits past the 18th decimal place are all zeros and its integer part has at most 20 significant digits; anything
else is quarantined, never rounded. The project's producer sends them as JSON strings. A producer that sends a JSON
number (0.12345678901234567891 rather than "0.12345678901234567891") gets it read from the record's own text: Spark
3.5's JSON reader turns a number into a double on the way (SPARK-48148), so its digits are taken from the raw text
instead (exponents included: 1.5e-7 is 0.00000015), and where the raw text is ambiguous (the field appears twice, or
its name is escaped) the record is quarantined, saying so. A field that appears twice is quarantined in any case.

Plausible times. ts_event/ts_ingest must be ISO-8601 with at most 6 fractional digits (Spark would silently truncate
a 7th) and Z or an offset; they are stored as UTC microsecond timestamps. A trade dated more than the tolerance
(--future-tolerance, default 1 hour: a laptop's clock may be minutes off) after the time it was received, ts_ingest
(or Kafka's timestamp, when ts_ingest itself is that far ahead of Kafka's) is quarantined: one trade dated 2099 would
otherwise become its pair's newest minute and freeze its bars. A trade that is very late is kept: Gold restates the
old bar.

Values from the data never become SQL text: every condition below is a Column expression, with values as typed
literals (F.lit).
"""

from __future__ import annotations

from datetime import date
from typing import Any, Iterable

from lakehouse.gold.bars import from_micros

BRONZE_SCHEMA = ("topic string, partition int, offset long, ts_kafka timestamp, ts_type int, key string, "
                 "value_raw string")
DECIMAL_TYPE = "decimal(38,18)"
SILVER_DDL = ("symbol STRING, price DECIMAL(38,18), size DECIMAL(38,18), side STRING, ord_type STRING, "
              "trade_id BIGINT, v1_ordinal INT, ts_event TIMESTAMP, ts_ingest TIMESTAMP, source STRING, "
              "topic STRING, partition INT, offset BIGINT, ts_kafka TIMESTAMP, trade_date DATE")
SILVER_COLUMNS = [column.split()[0] for column in SILVER_DDL.split(", ")]
# The record's bytes as they were (BINARY), and as text where they are valid UTF-8 (else null): a STRING column holding
# invalid UTF-8 makes the whole table unreadable to pyarrow, polars and delta-rs.
QUARANTINE_DDL = ("value_text STRING, value_bytes BINARY, topic STRING, partition INT, offset BIGINT, "
                  "ts_kafka TIMESTAMP, key_text STRING, key_bytes BINARY, reason STRING, quarantined_at TIMESTAMP")
QUARANTINE_COLUMNS = [column.split()[0] for column in QUARANTINE_DDL.split(", ")]
# The quarantine as versions before 2026-12 wrote it (value_raw and key: STRING holding the raw bytes); migrated.
OLD_QUARANTINE_COLUMNS = ["value_raw", "topic", "partition", "offset", "ts_kafka", "key", "reason", "quarantined_at"]
# Fields a trade must carry (JSON null counts as missing); trade_id is optional (null on API v1), source optional
# (producers before REST backfill did not send it: their trades came from the WebSocket), api is ignored.
REQUIRED_FIELDS = ["symbol", "price", "size", "side", "ord_type", "ts_event", "ts_ingest"]
JSON_FIELDS = [*REQUIRED_FIELDS, "trade_id", "source"]
MONEY_FIELDS = ["price", "size"]
SIDES = ("buy", "sell")
ORD_TYPES = ("limit", "market")
SOURCES = ("ws", "rest")
# What makes two v1 trades the same trade (they have no id); v1_ordinal tells identical ones apart.
V1_IDENTITY = ["symbol", "trade_date", "ts_event", "price", "size", "side", "ord_type"]
DEFAULT_FUTURE_TOLERANCE_S = 3600

# Java regexes (also valid Python `re`; the unit tests check them with `re`).
DECIMAL_RE = r"^[0-9]+(\.[0-9]+)?$"
# At most 20 significant integer digits; anything past the 18th fractional digit must be zeros. Text that matches
# this converts to decimal(38,18) exactly, so Spark's rounding cast cannot change its value.
DECIMAL_FITS_RE = r"^0*[0-9]{1,20}(\.[0-9]{0,18}0*)?$"
INTEGER_RE = r"^[0-9]{1,19}$"
# ISO-8601 with at most 6 fractional digits (Spark truncates a 7th silently) and an explicit zone. The groups
# (year .. second, fraction, zone, its sign, hours, minutes) are for the page's plain-Python reading of the same rule.
TIMESTAMP_RE = (r"^([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]{1,6})?"
                r"(Z|([+-])([0-9]{2}):([0-9]{2}))$")
# A field's name as a key of the record's text: a quote not escaped by a backslash (inside a JSON string a quote is
# always escaped), the name, a colon. {field} is one of MONEY_FIELDS, never data.
KEY_RE = r'(?<!\\)"{field}"\s*:'
# A JSON number right after such a key, in groups: sign, integer digits, fraction digits, exponent.
NUMBER_RE = r'\s*(-?)(0|[1-9][0-9]*)(?:\.([0-9]+))?(?:[eE]([+-]?[0-9]+))?\s*[,}]'
MAX_EXPONENT = 40  # a JSON number's exponent beyond this is refused (decimal(38,18) spans 10^-18 .. 10^20)
REASON_VALUE_CHARS = 80  # how much of an offending value the reason quotes


# ---------------------------------------------------------------------------------------------------------------------
# Checks


def _quoted(value):
    """"'<value>'" for a reason text, cut to REASON_VALUE_CHARS characters."""
    from pyspark.sql import functions as F

    return F.concat(F.lit("'"), F.substring(value, 1, REASON_VALUE_CHARS), F.lit("'"))


def _decimal_problem(name: str, text):
    """The reason a price/size text is not an exact decimal(38,18), or null."""
    from pyspark.sql import functions as F

    return (F.when(~text.rlike(DECIMAL_RE), F.concat(F.lit(f"{name} "), _quoted(text), F.lit(" is not a decimal")))
            .when(~text.rlike(DECIMAL_FITS_RE) | text.cast(DECIMAL_TYPE).isNull(),
                  F.concat(F.lit(f"{name} "), _quoted(text), F.lit(f" does not fit {DECIMAL_TYPE}"))))


def _timestamp_problem(name: str, text):
    from pyspark.sql import functions as F

    return F.when(~text.rlike(TIMESTAMP_RE) | text.cast("timestamp").isNull(),
                  F.concat(F.lit(f"{name} "), _quoted(text),
                           F.lit(" is not an ISO-8601 timestamp with a zone and at most 6 fractional digits")))


def _choice_problem(name: str, text, allowed: tuple[str, ...]):
    from pyspark.sql import functions as F

    return F.when(~text.isin(*allowed),
                  F.concat(F.lit(f"{name} "), _quoted(text), F.lit(f" is not {' or '.join(allowed)}")))


def _future_problem(ts_event_text, ts_ingest_text, tolerance_s: int):
    """The reason a trade is dated implausibly far in the future, or null: more than tolerance_s after ts_ingest, or
    after Kafka's timestamp when ts_ingest is itself more than tolerance_s after Kafka's."""
    from pyspark.sql import functions as F

    event, ingest = F.unix_micros(ts_event_text.cast("timestamp")), F.unix_micros(ts_ingest_text.cast("timestamp"))
    kafka, tolerance = F.unix_micros(F.col("ts_kafka")), F.lit(tolerance_s * 1_000_000)
    ingest_plausible = kafka.isNull() | (ingest <= kafka + tolerance)
    after = F.concat(F.lit(" is more than "), F.lit(str(tolerance_s)), F.lit(" s after "))
    return (F.when(ingest_plausible & (event > ingest + tolerance),
                   F.concat(F.lit("ts_event "), _quoted(ts_event_text), after, F.lit("its ts_ingest "),
                            _quoted(ts_ingest_text)))
            .when(~ingest_plausible & (event > kafka + tolerance),
                  F.concat(F.lit("ts_event "), _quoted(ts_event_text), after, F.lit("Kafka's timestamp '"),
                           F.date_format("ts_kafka", "yyyy-MM-dd'T'HH:mm:ss.SSSSSSX"),
                           F.lit("' (its ts_ingest "), _quoted(ts_ingest_text), F.lit(" is ahead of Kafka's too)"))))


def _money_text(name: str):
    """(the field's exact text, the reason it cannot be read exactly or null) for price or size.

    A JSON string is taken as Spark read it. A JSON number's digits come from the record's text (Spark would read
    it through a double), normalised to plain decimal text (1.5e-7 -> 0.00000015), sign kept, so that the decimal
    checks apply as to a string. Column expressions over constant patterns: the name is one of MONEY_FIELDS."""
    from pyspark.sql import functions as F

    assert name in MONEY_FIELDS
    raw, key = F.col("value_raw"), KEY_RE.format(field=name)
    sign, integer, fraction, exponent = (F.regexp_extract(raw, key + NUMBER_RE, group) for group in (1, 2, 3, 4))
    keys = F.size(F.regexp_extract_all(raw, F.lit(key), F.lit(0)))
    is_number = F.col(f"_numbers.{name}").isNotNull()  # from_json with a double: null unless a JSON number
    power = F.when(exponent == "", F.lit(0)).otherwise(exponent.cast("int"))
    digits = F.concat(integer, fraction)
    point = F.length(integer) + power  # where the decimal point goes, counted in digits
    plain = (F.when(point <= 0, F.concat(F.lit("0."), _zeros(-point), digits))
             .when(point >= F.length(digits), F.concat(digits, _zeros(point - F.length(digits))))
             .otherwise(F.concat(digits.substr(F.lit(1), point), F.lit("."),
                                 digits.substr(point + 1, F.length(digits) - point))))
    shown = F.concat(sign, integer, F.when(fraction != "", F.concat(F.lit("."), fraction)).otherwise(F.lit("")),
                     F.when(exponent != "", F.concat(F.lit("e"), exponent)).otherwise(F.lit("")))
    problem = (F.when(keys > 1, F.concat(F.lit(f"{name} appears "), keys.cast("string"),
                                         F.lit(" times in the record")))
               .when(is_number & ((keys != 1) | (integer == "")),
                     F.lit(f"{name} is a JSON number whose exact digits cannot be read from the record (its name "
                           f"is escaped); send {name} as a decimal string"))
               .when(is_number & (F.abs(power) > MAX_EXPONENT),
                     F.concat(F.lit(f"{name} "), _quoted(shown),
                              F.lit(f" is a JSON number with an exponent beyond {MAX_EXPONENT}"))))
    text = F.when(is_number, F.concat(sign, plain)).otherwise(F.col(f"j.{name}"))
    return text, problem


def _zeros(count):
    """A Column of `count` zero characters ('' for count <= 0)."""
    from pyspark.sql import functions as F

    return F.array_join(F.array_repeat(F.lit("0"), F.greatest(F.lit(0), count)), "")


def parse_bronze(bronze_df, future_tolerance_s: int = DEFAULT_FUTURE_TOLERANCE_S):
    """Bronze rows -> Bronze lineage + `value_raw` + the JSON fields as text (struct `j`) + the exact money texts
    (`_price`, `_size`) + `reason` (null for a valid trade)."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    raw = F.col("value_raw").cast("binary")
    schema = T.StructType([T.StructField(f, T.StringType()) for f in [*JSON_FIELDS, "_corrupt_record"]])
    parsed = (bronze_df
              .withColumn("j", F.from_json("value_raw", schema,
                                           {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": "_corrupt_record"}))
              .withColumn("_numbers", F.from_json("value_raw", "price double, size double")))
    money = {name: _money_text(name) for name in MONEY_FIELDS}
    parsed = parsed.withColumns({f"_{name}": text for name, (text, _) in money.items()})
    field = {f: F.col(f"j.{f}") for f in JSON_FIELDS}
    checks = [
        F.when(F.col("value_raw").isNull(), F.lit("no value (null Kafka record)")),
        F.when(F.encode(F.decode(raw, "UTF-8"), "UTF-8") != raw, F.lit("not valid UTF-8")),
        F.when(F.col("j").isNull() | F.col("j._corrupt_record").isNotNull(), F.lit("not JSON (or not a JSON object)")),
        *[F.when(field[f].isNull(), F.lit(f"missing field {f}")) for f in REQUIRED_FIELDS],
        F.when(F.trim(field["symbol"]) == "", F.lit("symbol is empty")),
        *[money[name][1] for name in MONEY_FIELDS],
        _decimal_problem("price", F.col("_price")),
        _decimal_problem("size", F.col("_size")),
        _choice_problem("side", field["side"], SIDES),
        _choice_problem("ord_type", field["ord_type"], ORD_TYPES),
        F.when(field["trade_id"].isNotNull() & (~field["trade_id"].rlike(INTEGER_RE)
                                                  | field["trade_id"].cast("long").isNull()),
               F.concat(F.lit("trade_id "), _quoted(field["trade_id"]), F.lit(" is not a non-negative integer"))),
        _timestamp_problem("ts_event", field["ts_event"]),
        _timestamp_problem("ts_ingest", field["ts_ingest"]),
        _future_problem(field["ts_event"], field["ts_ingest"], future_tolerance_s),
        F.when(field["source"].isNotNull(), _choice_problem("source", field["source"], SOURCES)),
    ]
    return parsed.withColumn("reason", F.coalesce(*checks))


# ---------------------------------------------------------------------------------------------------------------------
# Silver rows and quarantine rows


def to_silver_rows(parsed_df):
    """Valid trades from parse_bronze's output, typed, in Silver's column order (v1_ordinal still null)."""
    from pyspark.sql import functions as F

    ts_event = F.col("j.ts_event").cast("timestamp")
    return (
        parsed_df.where(F.col("reason").isNull())
        .select(
            F.col("j.symbol").alias("symbol"),
            F.col("_price").cast(DECIMAL_TYPE).alias("price"),
            F.col("_size").cast(DECIMAL_TYPE).alias("size"),
            F.col("j.side").alias("side"),
            F.col("j.ord_type").alias("ord_type"),
            F.col("j.trade_id").cast("long").alias("trade_id"),
            F.lit(None).cast("int").alias("v1_ordinal"),
            ts_event.alias("ts_event"),
            F.col("j.ts_ingest").cast("timestamp").alias("ts_ingest"),
            F.coalesce(F.col("j.source"), F.lit("ws")).alias("source"),
            "topic", "partition", "offset", "ts_kafka",
            F.to_date(ts_event).alias("trade_date"),  # the session time zone is UTC (build_spark)
        )
    )


def v2_batch_trades(silver_rows_df):
    """The batch's API v2 trades, each (symbol, trade_date, trade_id) once: the first copy by Kafka position."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    first = Window.partitionBy("symbol", "trade_date", "trade_id").orderBy("topic", "partition", "offset")
    return (silver_rows_df.where(F.col("trade_id").isNotNull())
            .withColumn("_copy", F.row_number().over(first)).where(F.col("_copy") == 1).select(*SILVER_COLUMNS))


def v1_batch_trades(v1_rows_df, held_df=None):
    """The batch's API v1 trades (no trade_id) with their v1_ordinal, each (values, v1_ordinal) once.

    Identical trades received in one WebSocket frame share ts_ingest (the producer stamps it per frame): v1_ordinal is
    a trade's rank among them by Kafka position, counting those Silver already holds (`held_df`: Silver's v1 rows
    of the batch's span; a frame cut across micro-batches), so reprocessing the same records gives the same
    numbers. A copy received in another frame (a reconnect's overlap, a replay) gets the same numbers as the
    original: only the first by Kafka position is kept here, and the MERGE skips it when Silver holds it already."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    frame, position = [*V1_IDENTITY, "ts_ingest"], ["topic", "partition", "offset"]
    members = v1_rows_df.select(*frame, *position)
    if held_df is not None:
        members = members.unionByName(held_df.select(*frame, *position)).distinct()
    ranked = members.withColumn("v1_ordinal", F.row_number().over(
        Window.partitionBy(*frame).orderBy(*position)).cast("int"))
    first = Window.partitionBy(*V1_IDENTITY, "v1_ordinal").orderBy(*position)
    return (v1_rows_df.drop("v1_ordinal").join(ranked, [*frame, *position])
            .withColumn("_copy", F.row_number().over(first)).where(F.col("_copy") == 1).select(*SILVER_COLUMNS))


def batch_summary(parsed_df):
    """One row per kind of record and group, in one pass over the batch: kind "v2" / "v1" (valid trades with / without
    trade_id, grouped by symbol) or "bad" (grouped by topic and partition), with the count n and what the MERGEs are
    pruned by: first/last trade_id, first/last ts_event (microseconds since the epoch), the trade_dates, first/last
    offset."""
    from pyspark.sql import functions as F

    good = F.col("reason").isNull()
    kind = F.when(~good, "bad").when(F.col("j.trade_id").isNull(), "v1").otherwise("v2")
    ts_event = F.col("j.ts_event").cast("timestamp")
    return (parsed_df.groupBy(kind.alias("kind"), F.when(good, F.col("j.symbol")).otherwise(F.col("topic")).alias("group"),
                              F.when(~good, F.col("partition")).alias("partition"))
            .agg(F.count(F.lit(1)).alias("n"),
                 F.min(F.col("j.trade_id").cast("long")).alias("first_id"),
                 F.max(F.col("j.trade_id").cast("long")).alias("last_id"),
                 F.unix_micros(F.min(ts_event)).alias("first_ts"), F.unix_micros(F.max(ts_event)).alias("last_ts"),
                 F.collect_set(F.to_date(ts_event)).alias("dates"),
                 F.min("offset").alias("first_offset"), F.max("offset").alias("last_offset")))


def utf8_text(binary):
    """The bytes as text where they are valid UTF-8; null where they are not (or are null)."""
    from pyspark.sql import functions as F

    return F.when(F.encode(F.decode(binary, "UTF-8"), "UTF-8") == binary, F.decode(binary, "UTF-8"))


def to_quarantine(parsed_df):
    """Invalid records from parse_bronze's output, in the quarantine's column order."""
    from pyspark.sql import functions as F

    return quarantine_rows(parsed_df.where(F.col("reason").isNotNull()), F.col("reason"), F.current_timestamp())


def quarantine_rows(records_df, reason, quarantined_at):
    """Bronze-shaped rows (value_raw and key: STRING holding the raw bytes) as quarantine rows."""
    from pyspark.sql import functions as F

    value, key = F.col("value_raw").cast("binary"), F.col("key").cast("binary")
    return records_df.select(utf8_text(value).alias("value_text"), value.alias("value_bytes"), "topic", "partition",
                             "offset", "ts_kafka", utf8_text(key).alias("key_text"), key.alias("key_bytes"),
                             reason.alias("reason"), quarantined_at.alias("quarantined_at"))


# ---------------------------------------------------------------------------------------------------------------------
# What a MERGE matches on, and the part of the target it reads


def _prefix(alias: str):
    from pyspark.sql import functions as F

    return lambda name: F.col(f"{alias}{name}")


def id_ranges(rows: Iterable[Any], alias: str = "t."):
    """Column pruning the target of a v2 MERGE to the batch: its dates and, per symbol, its trade_id range (Delta's
    file statistics then skip every file outside it). `rows`: (symbol, first trade_id, last trade_id, [dates])."""
    from pyspark.sql import functions as F

    col, rows = _prefix(alias), list(rows)
    per_symbol = F.lit(False)
    for symbol, first, last, _ in rows:
        per_symbol = per_symbol | ((col("symbol") == F.lit(symbol)) & col("trade_id").between(F.lit(int(first)),
                                                                                              F.lit(int(last))))
    return col("trade_date").isin(_dates(rows)) & per_symbol


def time_ranges(rows: Iterable[Any], alias: str = "t."):
    """The same for v1 trades, by ts_event: `rows`: (symbol, first ts_event, last ts_event (microseconds), [dates])."""
    from pyspark.sql import functions as F

    col, rows = _prefix(alias), list(rows)
    per_symbol = F.lit(False)
    for symbol, first, last, _ in rows:
        per_symbol = per_symbol | ((col("symbol") == F.lit(symbol))
                                   & col("ts_event").between(F.lit(from_micros(first)), F.lit(from_micros(last))))
    return col("trade_date").isin(_dates(rows)) & per_symbol


def _dates(rows: list[Any]) -> list[date]:
    return sorted({d for row in rows for d in row[3]})


def offset_ranges(rows: Iterable[Any]):
    """The same for the quarantine, by Kafka position: `rows`: (topic, partition, first offset, last offset)."""
    from pyspark.sql import functions as F

    wanted = F.lit(False)
    for topic, partition, first, last in rows:
        wanted = wanted | ((F.col("t.topic") == F.lit(topic)) & (F.col("t.partition") == F.lit(int(partition)))
                           & F.col("t.offset").between(F.lit(int(first)), F.lit(int(last))))
    return wanted


def v2_match():
    from pyspark.sql import functions as F

    return F.expr("t.symbol = s.symbol AND t.trade_date = s.trade_date AND t.trade_id = s.trade_id")


def v1_match():
    from pyspark.sql import functions as F

    return F.expr(" AND ".join(f"t.{c} = s.{c}" for c in V1_IDENTITY)
                  + " AND t.trade_id IS NULL AND t.v1_ordinal = s.v1_ordinal")


def quarantine_match():
    from pyspark.sql import functions as F

    return F.expr("t.topic = s.topic AND t.partition = s.partition AND t.offset = s.offset")
