-- Roles of the tradewatch database, least privilege first:
--   tradewatch            the bot: owns the database, runs the migrations, reads and writes.
--   tradewatch_exporter   the analytics exporter: reads every table; writes only the `alerts`
--                         table, through tradewatch_alert_writer (see below).
--   tradewatch_grafana    Grafana's Postgres panels: read-only sessions, 30 s statement limit.
--   tradewatch_alert_writer (no login) may INSERT/UPDATE `alerts`. The migration that creates
--                         `alerts` must grant it: GRANT INSERT, UPDATE ON alerts TO tradewatch_alert_writer;
--                         re-running this file after the migrations grants it as well.
--
-- Run by psql as a superuser connected to the tradewatch database. The postgres image runs it
-- once on a fresh volume (it is mounted into /docker-entrypoint-initdb.d); the native stack
-- and a password rotation run it again by hand, which is safe (it is idempotent):
--   psql -v ON_ERROR_STOP=1 -U postgres -d tradewatch -f 10-tradewatch-roles.sql
-- Passwords never come from this file. Each is read from the file named by <NAME>_FILE
-- (compose mounts them as secrets under /run/secrets, so no password sits in the container's
-- environment), else from the variable itself (psql 15+ \getenv; the native stack):
--   TRADEWATCH_DB_PASSWORD(_FILE), EXPORTER_DB_PASSWORD(_FILE), GRAFANA_DB_PASSWORD(_FILE).

\set ON_ERROR_STOP on
\set QUIET on
SET client_min_messages = warning;

-- psql runs the backquoted `cat`; :'name' is the variable quoted as one shell argument, and
-- psql drops the trailing newline of the output.
\getenv tradewatch_password_file TRADEWATCH_DB_PASSWORD_FILE
\if :{?tradewatch_password_file}
  \set tradewatch_password `cat -- :'tradewatch_password_file'`
\else
  \getenv tradewatch_password TRADEWATCH_DB_PASSWORD
\endif
\getenv exporter_password_file EXPORTER_DB_PASSWORD_FILE
\if :{?exporter_password_file}
  \set exporter_password `cat -- :'exporter_password_file'`
\else
  \getenv exporter_password EXPORTER_DB_PASSWORD
\endif
\getenv grafana_password_file GRAFANA_DB_PASSWORD_FILE
\if :{?grafana_password_file}
  \set grafana_password `cat -- :'grafana_password_file'`
\else
  \getenv grafana_password GRAFANA_DB_PASSWORD
\endif

-- Refuse to create login roles without passwords: one clear line per missing variable.
\if :{?tradewatch_password}
\else
  \set tradewatch_password ''
\endif
\if :{?exporter_password}
\else
  \set exporter_password ''
\endif
\if :{?grafana_password}
\else
  \set grafana_password ''
\endif
SELECT format('DO $check$ BEGIN RAISE EXCEPTION %L; END $check$', name || ' is not set (nor its _FILE; see .env.example)')
FROM (VALUES ('TRADEWATCH_DB_PASSWORD', :'tradewatch_password'),
             ('EXPORTER_DB_PASSWORD', :'exporter_password'),
             ('GRAFANA_DB_PASSWORD', :'grafana_password')) AS required(name, value)
WHERE value = ''
\gexec

-- Create what is missing; then (re)set passwords, so a re-run rotates them.
SELECT format('CREATE ROLE %I', role_name)
FROM unnest(ARRAY['tradewatch', 'tradewatch_exporter', 'tradewatch_grafana', 'tradewatch_alert_writer']) AS role_name
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = role_name)
\gexec

ALTER ROLE tradewatch WITH LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB PASSWORD :'tradewatch_password';
ALTER ROLE tradewatch_exporter WITH LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB PASSWORD :'exporter_password';
ALTER ROLE tradewatch_grafana WITH LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB PASSWORD :'grafana_password';
ALTER ROLE tradewatch_alert_writer WITH NOLOGIN;

ALTER ROLE tradewatch_grafana SET default_transaction_read_only = on;
ALTER ROLE tradewatch_grafana SET statement_timeout = '30s';
ALTER ROLE tradewatch_exporter SET statement_timeout = '60s';
GRANT tradewatch_alert_writer TO tradewatch_exporter;

-- The bot owns the database, hence (Postgres 15+) the public schema it migrates.
SELECT current_database() AS tradewatch_db \gset
ALTER DATABASE :"tradewatch_db" OWNER TO tradewatch;
REVOKE ALL ON DATABASE :"tradewatch_db" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"tradewatch_db" TO tradewatch_exporter, tradewatch_grafana;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO tradewatch_exporter, tradewatch_grafana;

-- Readers see every table the bot creates from now on, and every one that exists already.
ALTER DEFAULT PRIVILEGES FOR ROLE tradewatch IN SCHEMA public
  GRANT SELECT ON TABLES TO tradewatch_exporter, tradewatch_grafana;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO tradewatch_exporter, tradewatch_grafana;

SELECT 'GRANT INSERT, UPDATE ON public.alerts TO tradewatch_alert_writer'
WHERE to_regclass('public.alerts') IS NOT NULL
\gexec
-- ... and the id sequence of `alerts`, if it has one (serial or identity column).
SELECT format('GRANT USAGE ON SEQUENCE %s TO tradewatch_alert_writer', seq.oid::regclass)
FROM pg_class AS seq
JOIN pg_depend AS dep ON dep.objid = seq.oid AND dep.classid = 'pg_class'::regclass
WHERE seq.relkind = 'S' AND dep.refclassid = 'pg_class'::regclass AND dep.refobjid = to_regclass('public.alerts')
\gexec
