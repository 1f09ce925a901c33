"""The layers together, and keeping them in shape.

    all_layers.py  Bronze, Silver and Gold as one Spark application (spark/jobs/all_layers.py)
    runner.py      the whole pipeline in one terminal: broker, producer, layers, safe stop (make run / make demo,
                   infra/run_pipeline.py)
    optimize.py    OPTIMIZE + VACUUM of Silver, its quarantine and Gold now (make optimize, spark/jobs/optimize_tables.py)
"""
