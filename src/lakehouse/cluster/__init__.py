"""A local cluster on this machine: 3 Kafka brokers + 3 KRaft controllers and a Spark standalone master with two
workers, to run the pipeline on (`make cluster-up`, `make run CLUSTER=1`) and to break on purpose.

    local.py             start, stop, inspect, kill and restart the cluster's processes (infra/cluster.py)
    spark_standalone.py  the Spark master's and workers' command lines, and the master's view of the cluster
"""
