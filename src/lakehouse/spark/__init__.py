"""What every Spark job shares (no job here).

    session.py    the SparkSession: local or --master, the jars, shared settings, Spark's log, the package for executors
    jars.py       the Kafka connector's and Delta Lake's jars: resolved with Maven at set-up (spark/fetch_jars.py)
    flags.py      the shared flags: --trigger, --master, --drain-on-stop/--drain-timeout, whole numbers, true/false
    lifecycle.py  a job's life: wait for its input, run its queries, stop cleanly on Ctrl-C/SIGTERM, drain on stop
    sinks.py      the Parquet file sink, batch ids in Spark's log folders, an output and its checkpoint belonging together
    progress.py   what a job tells its user: one line per micro-batch, a Spark error's meaningful line, a failed start
"""
