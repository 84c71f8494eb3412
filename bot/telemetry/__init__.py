"""Telemetry building blocks for the bot: correlation ids, JSON logs, Loki push,
Prometheus metrics, the health/metrics HTTP server and Alertmanager alerts.

Self-contained on purpose: nothing here imports the engine, strategies, Flask or the
store, so each piece can be wired (and tested) on its own.
"""
