"""The tradewatch exporter: trade analytics as Prometheus metrics and a REST API, plus the alert sink.

    python -m exporter          # serves on $EXPORTER_HOST:$EXPORTER_PORT (0.0.0.0:9108) with waitress

It only reads the trading tables (on PostgreSQL it runs as `tradewatch_exporter`, which
cannot write them) and writes nothing but the `alerts` table.
"""
