"""The live page: a small web server (app) showing per-pair 1-minute candles, closed minutes from Gold (gold) and the
open minute live from the topic's tail (trades, live, tail) with Gold's exact rules, the pipeline's health
(lakehouse.observe) and Prometheus metrics (metrics). `make page` starts it alone; make run / make demo with the
pipeline."""
