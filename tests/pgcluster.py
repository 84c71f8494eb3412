"""The throwaway PostgreSQL server now lives in db/pgcluster.py (benchmarks use it too); the tests'
`from pgcluster import ...` keeps working through this re-export."""

from db.pgcluster import (  # noqa: F401 - re-exported
    APP_DATABASE,
    APP_ROLE,
    PG_ROOT,
    SERVER_USER,
    PgCluster,
    PgClusterError,
    find_bin_dir,
    free_port,
)
