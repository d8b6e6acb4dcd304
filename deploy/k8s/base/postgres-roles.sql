-- One service's PostgreSQL role and database, least privilege. Run by the superuser (the only
-- place it is used), once per service, with psql variables; postgres-setup.sh does it for every
-- service (docker-compose.yml's one-shot `postgres-setup`, the Kubernetes migration Job's init
-- container):
--
--   psql -v db=eb_booking -v role=eb_booking -v password=... -f postgres-roles.sql
--
-- Idempotent: applied again on every start, it sets the current password and changes nothing
-- else. The role owns its database, its `public` schema and every object in it, so the service
-- creates and migrates its own tables at start-up with its own role (no superuser, no CREATEDB).
-- Every other role loses CONNECT on the database: a service cannot open another's.
\set ON_ERROR_STOP on

-- The role may log in and nothing else. An empty password clears it (no password login).
SELECT format('CREATE ROLE %I', :'role')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'role') \gexec
ALTER ROLE :"role" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    PASSWORD :'password';

SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'role')
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db') \gexec
ALTER DATABASE :"db" OWNER TO :"role";
-- PUBLIC (every role) has CONNECT and TEMPORARY on a new database by default: only the owner.
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"db" TO :"role";

\connect :"db"
ALTER SCHEMA public OWNER TO :"role";
REVOKE ALL ON SCHEMA public FROM PUBLIC;

-- A database migrated earlier by the superuser (before the per-service roles existed) holds
-- objects the role does not own: hand them over, so that its next migration can alter them.
-- Sequences owned by a table column follow their table and cannot be altered alone.
SELECT format('ALTER %s public.%I OWNER TO %I',
              CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW'
                             WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'TABLE' END,
              c.relname, :'role')
  FROM pg_class c
 WHERE c.relnamespace = 'public'::regnamespace
   AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
   AND c.relowner <> :'role'::regrole
   AND NOT (c.relkind = 'S' AND EXISTS (
       SELECT 1 FROM pg_depend d
        WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('a', 'i')))
\gexec
SELECT format('ALTER ROUTINE %s OWNER TO %I', p.oid::regprocedure, :'role')
  FROM pg_proc p
 WHERE p.pronamespace = 'public'::regnamespace AND p.proowner <> :'role'::regrole
\gexec
SELECT format('ALTER TYPE public.%I OWNER TO %I', t.typname, :'role')
  FROM pg_type t
 WHERE t.typnamespace = 'public'::regnamespace AND t.typowner <> :'role'::regrole
   AND t.typtype IN ('e', 'd') -- enums and domains; a table's row type follows its table
\gexec
