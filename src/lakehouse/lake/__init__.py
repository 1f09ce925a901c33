"""The lake's Delta tables (Silver, its quarantine, Gold), written with Spark and read without it.

    delta.py    what the jobs that write Delta tables share: creation, idempotent per-batch writes, conflict retries,
                compaction and VACUUM
    reader.py   read Silver and Gold without Spark or a JVM (deltalake lists the files, pyarrow reads them)
"""
