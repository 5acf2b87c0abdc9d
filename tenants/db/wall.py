"""The database wall's SQL: the private schema, the verifying functions and the policy predicates.

Everything PostgreSQL checks lives here, in one place:

- `ameide_private.scope_key` holds HMAC's padded key halves; only the owner reads it.
- `ameide_private.scope_id(kind)` returns the id of the transaction's scope when `app.scope`
  carries a value the application signed (tenants.db.signing) for this backend and not expired,
  and NULL otherwise: a `set_config` from raw SQL, a value copied from another connection or one
  left over after its expiry is never accepted.
- `ameide_private.record_audit(...)` and `open_breakglass(...)` are the only ways to write the
  audit log; both demand the application's signature, and the database itself fills in the time,
  the backend pid and the transaction id.
- A break-glass grant is a committed row; the break-glass role's policy admits rows only while the
  transaction carries a signed scope naming an open grant. Where Citus is installed the policy is
  every role's (no role switch there) and the grants are a reference table (docs/citus.md).

`install()` creates or refreshes all of it (idempotent; run by `migrate` and `tenants setup` as the
owner). Policies of tenant and global tables are built from the predicates below.
"""

from __future__ import annotations

from django.apps import apps
from django.conf import settings

from tenants.db.signing import key_pads, scope_key

PRIVATE = "ameide_private"
SCOPE_SETTING = "app.scope"
AUDIT_TABLE = "tenants_auditevent"
GRANT_TTL_SECONDS = 3600  # a break-glass block longer than this is cut off
# Citus's global pids are node id * GPID_BASE + pid (citus_backend_gpid()); a scope bound to
# a number at least this large names a global pid (docs/citus.md).
GPID_BASE = 10_000_000_000
KEY_TABLE_DDL = f"CREATE TABLE IF NOT EXISTS {PRIVATE}.scope_key"

# The functions the runtime and break-glass roles may call; mac_of() is not among them, or the
# runtime role could ask PostgreSQL to sign for it.
CALLABLE = (
    "scope_id(text)",
    "breakglass_open()",
    "record_audit(text, text, text, bigint, text, text, text, text, text)",
    "open_breakglass(text, text, bigint, text, text, bigint, text, text)",
    "close_breakglass(bigint, text)",
    "reserve_ids(text, text, bigint, text)",
    "import_audit(bigint, text, text, text, text, bigint, text, text, text, text, text)",
    "scope_search_path()",
    "scope_placed_in(text)",
    "scope_placed_in(text, text[])",
    "scope_member_ids()",
)
# The restrictive policy of every tenant table in the primary database, shared and dedicated
# schemas alike: rows are written into a table only by a tenant placed there (placement_check).
PLACEMENT_POLICY = "ameide_placement"
# A moving tenant's paused write (the API answers 503) and the table of frozen (tenant, schema)
# pairs: the placement check here and the capture trigger (tenants.placement.capture) raise it.
# Class 55 (object not in prerequisite state): drivers that do not know the code still report
# an operational error, which the API answers with 503.
FROZEN_SQLSTATE = "55A01"
FREEZE_TABLE = "placement_freeze"
# How long an import waits for the transactions that hold ids of a sequence (reserve_ids);
# past it the import stops with nothing written, to be run again.
IMPORT_LOCK_TIMEOUT = "10s"
# The settings of a function that runs a query with a parameter on the hot path (the search
# path of every tenant statement, a global table's policy, a grant check). The runtime
# connection plans every statement for its own parameters (plan_cache_mode=force_custom_plan,
# tenants.db.backend), and a function's queries inherit that: its one-row lookup by key was
# planned again at every call, about twice the cost of the signature check (docs/benchmarks.md).
# A generic plan is right for a lookup by key whatever the value.
LOOKUP_SETTINGS = "SET search_path = pg_catalog, pg_temp SET plan_cache_mode = force_generic_plan"


def _scope(kind: str, *, inline: bool) -> str:
    """The signed scope's id: an InitPlan (evaluated once per statement, so the index on
    tenant_id is still used), or inline where Citus refuses subqueries in policies (its
    distributed and reference tables, tenants.citus)."""
    call = f"{PRIVATE}.scope_id('{kind}')"
    return call if inline else f"(SELECT {call})"


def tenant_predicate(column: str = "tenant_id", *, inline: bool = False) -> str:
    """Rows of the signed tenant."""
    return f"{column} = {_scope('t', inline=inline)}"


def global_predicate(under_tenant: str, *, inline: bool = False) -> str:
    """Global rows: all of them in the signed global scope, or what a tenant may see of them."""
    if inline:
        # Citus's policy deparser knows no IS NOT NULL (its "unrecognized node type: 15");
        # the global scope's id is 0, so >= 0 says the same. Inline, each call is made per
        # row: the tenant's test, usually true, comes first.
        return f"(({under_tenant}) OR {_scope('g', inline=True)} >= 0)"
    # The global scope first: its InitPlan is evaluated once per statement, and a scan in the
    # global scope (the platform console, sign-in) then never evaluates `under_tenant` per
    # row, whose membership probe would otherwise run for every user row read.
    return f"({_scope('g', inline=False)} IS NOT NULL OR ({under_tenant}))"


def breakglass_predicate(*, inline: bool = False) -> str:
    call = f"{PRIVATE}.breakglass_open()"
    return call if inline else f"(SELECT {call})"


def placement_check(schema: str, *, placements: tuple[str, ...]) -> str:
    """WITH CHECK of PLACEMENT_POLICY on a table of `schema` (its name, unquoted) holding the
    rows of tenants placed as `placements`. An InitPlan: evaluated once per statement, never
    per row."""
    kinds = ", ".join(f"'{kind}'" for kind in placements)
    return f"(SELECT {PRIVATE}.scope_placed_in('{schema}', ARRAY[{kinds}]))"


def placement_policy_sql(table: str, *, schema: str, placements: tuple[str, ...]) -> list[str]:
    """PLACEMENT_POLICY on `table` (quoted), made again: restrictive and WITH CHECK only, so it
    narrows what INSERT and UPDATE may write, and costs reads and deletes nothing (USING true)."""
    return [
        f"DROP POLICY IF EXISTS {PLACEMENT_POLICY} ON {table}",
        f"CREATE POLICY {PLACEMENT_POLICY} ON {table} AS RESTRICTIVE USING (true) "
        f"WITH CHECK ({placement_check(schema, placements=placements)})",
    ]


def current_tenant_sql(*, inline: bool = False) -> str:
    """For `under_tenant` templates: the signed tenant of the statement."""
    return _scope("t", inline=inline)


def _functions_sql(schema: str) -> list[str]:
    audit = f"{schema}.{AUDIT_TABLE}"
    return [
        f"CREATE SCHEMA IF NOT EXISTS {PRIVATE}",
        f"REVOKE ALL ON SCHEMA {PRIVATE} FROM PUBLIC",
        f"""{KEY_TABLE_DDL} (
            id int PRIMARY KEY CHECK (id = 1),
            inner_pad bytea NOT NULL,
            outer_pad bytea NOT NULL)""",
        f"""CREATE TABLE IF NOT EXISTS {PRIVATE}.breakglass_grant (
            id bigserial PRIMARY KEY,
            nonce text NOT NULL UNIQUE,
            pid int NOT NULL,
            audit_id bigint NOT NULL,
            opened_at timestamptz NOT NULL DEFAULT clock_timestamp(),
            expires_at timestamptz NOT NULL,
            closed_at timestamptz)""",
        f"REVOKE ALL ON ALL TABLES IN SCHEMA {PRIVATE} FROM PUBLIC",
        f"""CREATE OR REPLACE FUNCTION {PRIVATE}.mac_of(message text) RETURNS text
            LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
            DECLARE k record;
            BEGIN
              SELECT inner_pad, outer_pad INTO k FROM {PRIVATE}.scope_key WHERE id = 1;
              IF NOT FOUND THEN RETURN NULL; END IF;
              RETURN encode({_hmac("message", key="k")}, 'hex');
            END $$""",
        # Compared through a second hash, so the comparison's timing tells nothing.
        f"""CREATE OR REPLACE FUNCTION {PRIVATE}.mac_ok(message text, mac text) RETURNS boolean
            LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
            DECLARE expected text := {PRIVATE}.mac_of(message);
            BEGIN
              RETURN expected IS NOT NULL AND mac IS NOT NULL
                AND sha256(convert_to(expected, 'UTF8')) = sha256(convert_to(mac, 'UTF8'));
            END $$""",
        # A Citus global pid (node id * 10^10 + pid of the coordinator's backend), which every
        # worker backend serving that backend reports too. Where the node is this one, the pid
        # must be this backend's own (an application_name can claim any global pid); on another
        # node only the global pid is known. Not called on a single server.
        f"""CREATE OR REPLACE FUNCTION {PRIVATE}.scope_gpid_ok(gpid bigint) RETURNS boolean
            LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
            BEGIN
              IF to_regproc('pg_catalog.citus_backend_gpid') IS NULL THEN RETURN false; END IF;
              IF gpid <> citus_backend_gpid() THEN RETURN false; END IF;
              RETURN NOT (div(gpid, {GPID_BASE}) = (SELECT n.nodeid FROM pg_dist_node n
                  JOIN pg_dist_local_group g ON g.groupid = n.groupid LIMIT 1)
                AND mod(gpid, {GPID_BASE}) <> pg_backend_pid());
            END $$""",
        # Evaluated for every statement (an InitPlan of each policy) and, in autocommit, in a
        # new transaction each time, where PL/pgSQL prepares each expression of a function
        # again and every operation costs microseconds: so as few as the check needs (less
        # than half the cost of checking each field's shape first, docs/benchmarks.md).
        # The value is kind:ident:pid:expiry:mac (tenants.db.signing). The MAC is checked
        # first, through a second hash as mac_ok does, over everything before it: once it
        # holds, the fields are the application's own (digits, as it writes them), so they
        # are read without checking their shape. The kind and its colon come first in the
        # signed text, and the application's other signed messages (audit rows, grants) start
        # with their name and separate fields with \x1f: none can pass for a scope.
        f"""CREATE OR REPLACE FUNCTION {PRIVATE}.scope_id(kind text) RETURNS bigint
            LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
            DECLARE
              raw text := current_setting('{SCOPE_SETTING}', true);
              k record;
            BEGIN
              SELECT inner_pad, outer_pad INTO k FROM {PRIVATE}.scope_key WHERE id = 1;
              IF NOT coalesce(length(raw) <= 200 AND left(raw, 2) = kind || ':'
                 AND sha256(convert_to(encode({_hmac("left(raw, -65)", key="k")}, 'hex'), 'UTF8'))
                   = sha256(convert_to(right(raw, 64), 'UTF8')), false) THEN
                RETURN NULL;
              END IF;
              -- pid 0 binds to no backend (transaction poolers); at least GPID_BASE, a
              -- Citus global pid.
              RETURN CASE WHEN split_part(raw, ':', 4)::bigint
                  >= extract(epoch FROM statement_timestamp())
                AND (split_part(raw, ':', 3) = '0'
                     OR (split_part(raw, ':', 3)::bigint < {GPID_BASE}
                         AND split_part(raw, ':', 3)::bigint = pg_backend_pid())
                     OR (split_part(raw, ':', 3)::bigint >= {GPID_BASE}
                         AND {PRIVATE}.scope_gpid_ok(split_part(raw, ':', 3)::bigint)))
                THEN split_part(raw, ':', 2)::bigint END;
            END $$""",
        # On Citus the grant table is a reference table (tenants.citus.placement): a copy on
        # every node, written by 2PC with its audit row. The policies call the check inside
        # queries on shards, where Citus refuses to read a Citus table ("cannot execute a
        # distributed query from a query on a shard"), so it reads this node's own copy, the
        # reference table's one shard (the same name on every node), named in the function's
        # text: a static query, planned once per session (looking the shard up on each call
        # cost about ten times the tenant check per row). Created again whenever this list
        # runs (every migrate, `tenants distribute`); a node without the copy raises.
        # No percent sign in this text: schema editors format their statements.
        f"""DO $grant_fn$ DECLARE grants text := '{PRIVATE}.breakglass_grant'; shard bigint;
            BEGIN
              IF to_regclass('pg_catalog.pg_dist_shard') IS NOT NULL THEN
                EXECUTE 'SELECT shardid FROM pg_dist_shard WHERE logicalrelid = $1::regclass'
                  INTO shard USING grants;
                IF shard IS NOT NULL THEN
                  grants := '{PRIVATE}.' || quote_ident('breakglass_grant_' || shard);
                END IF;
              END IF;
              EXECUTE 'CREATE OR REPLACE FUNCTION {PRIVATE}.grant_open(p_grant bigint)
                RETURNS boolean LANGUAGE plpgsql STABLE SECURITY DEFINER
                {LOOKUP_SETTINGS} AS $body$
                BEGIN
                  RETURN EXISTS (SELECT 1 FROM ' || grants || ' g WHERE g.id = p_grant
                    AND g.closed_at IS NULL AND g.expires_at > statement_timestamp());
                END $body$';
            END $grant_fn$""",
        f"""CREATE OR REPLACE FUNCTION {PRIVATE}.breakglass_open() RETURNS boolean
            LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
            DECLARE grant_id bigint := {PRIVATE}.scope_id('b');
            BEGIN
              RETURN grant_id IS NOT NULL AND {PRIVATE}.grant_open(grant_id);
            END $$""",
        # The audit log's only door. The database fills in time, pid and transaction; the
        # caller's fields must carry the application's signature.
        f"""CREATE OR REPLACE FUNCTION {PRIVATE}.record_audit(
              p_action text, p_actor text, p_acting_as text, p_tenant bigint, p_slug text,
              p_reason text, p_request text, p_details text, p_mac text)
            RETURNS TABLE (id bigint, at timestamptz, txid bigint)
            LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
            #variable_conflict use_column
            BEGIN
              IF NOT {PRIVATE}.mac_ok(concat_ws(E'\\x1f', 'audit', p_action, p_actor, p_acting_as,
                   coalesce(p_tenant::text, ''), p_slug, p_reason, p_request, p_details), p_mac) THEN
                RAISE EXCEPTION 'audit row not signed by the application' USING ERRCODE = '42501';
              END IF;
              IF p_action = 'unscoped' THEN
                RAISE EXCEPTION 'break-glass is opened only by open_breakglass()'
                  USING ERRCODE = '42501';
              END IF;
              RETURN QUERY INSERT INTO {audit} AS a
                (at, actor, acting_as, action, tenant_id, tenant_slug, reason, request_id,
                 details, txid, pid)
                VALUES (clock_timestamp(), p_actor, p_acting_as, p_action, p_tenant, p_slug,
                        p_reason, p_request, p_details::jsonb, txid_current(), pg_backend_pid())
                RETURNING a.id, a.at, a.txid;
            END $$""",
        f"""CREATE OR REPLACE FUNCTION {PRIVATE}.open_breakglass(
              p_actor text, p_reason text, p_tenant bigint, p_request text, p_acting_as text,
              p_expires bigint, p_nonce text, p_mac text)
            RETURNS bigint
            LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
            DECLARE audit_id bigint; grant_id bigint;
            BEGIN
              IF NOT {PRIVATE}.mac_ok(concat_ws(E'\\x1f', 'breakglass', p_actor, p_reason,
                   coalesce(p_tenant::text, ''), p_request, p_acting_as, p_expires::text, p_nonce),
                   p_mac) THEN
                RAISE EXCEPTION 'break-glass request not signed by the application'
                  USING ERRCODE = '42501';
              END IF;
              IF p_expires < extract(epoch FROM clock_timestamp())
                 OR p_expires > extract(epoch FROM clock_timestamp()) + {GRANT_TTL_SECONDS} THEN
                RAISE EXCEPTION 'break-glass request expired' USING ERRCODE = '42501';
              END IF;
              IF coalesce(btrim(p_reason), '') = '' THEN
                RAISE EXCEPTION 'break-glass needs a reason' USING ERRCODE = '22023';
              END IF;
              INSERT INTO {audit} AS a
                (at, actor, acting_as, action, tenant_id, tenant_slug, reason, request_id,
                 details, txid, pid)
                VALUES (clock_timestamp(), p_actor, p_acting_as, 'unscoped', p_tenant, '',
                        p_reason, p_request, '{{}}'::jsonb, txid_current(), pg_backend_pid())
                RETURNING a.id INTO audit_id;
              -- The nonce is unique: a signed request opens one grant, once.
              INSERT INTO {PRIVATE}.breakglass_grant (nonce, pid, audit_id, expires_at)
                VALUES (p_nonce, pg_backend_pid(), audit_id, to_timestamp(p_expires))
                RETURNING id INTO grant_id;
              RETURN grant_id;
            END $$""",
        f"""CREATE OR REPLACE FUNCTION {PRIVATE}.close_breakglass(p_grant bigint, p_mac text)
            RETURNS void
            LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
            -- A value, not clock_timestamp() in the UPDATE: Citus refuses volatile functions
            -- in an UPDATE of its tables (the grants are a reference table there).
            DECLARE closed timestamptz := clock_timestamp();
            BEGIN
              IF NOT {PRIVATE}.mac_ok(concat_ws(E'\\x1f', 'close', p_grant::text), p_mac) THEN
                RAISE EXCEPTION 'not signed by the application' USING ERRCODE = '42501';
              END IF;
              UPDATE {PRIVATE}.breakglass_grant SET closed_at = closed
                WHERE id = p_grant AND closed_at IS NULL;
            END $$""",
        # An import keeps archived ids only where the table's sequence can never hand them
        # out: this moves the sequence of `schema.table` up to p_to (never down, and not at all
        # past half its range) and returns the highest id it had handed out before, and that
        # ceiling.
        # ALTER SEQUENCE waits for every transaction that has taken an id from the sequence
        # and keeps nextval() out until it is done (read, then move: nothing can come between).
        f"""CREATE OR REPLACE FUNCTION {PRIVATE}.reserve_ids(
              p_table text, p_column text, p_to bigint, p_mac text)
            RETURNS TABLE (handed_out bigint, id_ceiling bigint)
            LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
            SET lock_timeout = '{IMPORT_LOCK_TIMEOUT}' AS $$
            DECLARE seq regclass; seq_max bigint; last_id bigint; called boolean;
            BEGIN
              IF NOT {PRIVATE}.mac_ok(concat_ws(E'\\x1f', 'reserve_ids', p_table, p_column,
                   p_to::text), p_mac) THEN
                RAISE EXCEPTION 'id reservation not signed by the application'
                  USING ERRCODE = '42501';
              END IF;
              -- (No percent sign in these bodies: the driver would read it as a placeholder.)
              seq := pg_get_serial_sequence('{schema}.' || quote_ident(p_table), p_column)::regclass;
              IF seq IS NULL THEN
                RAISE EXCEPTION USING ERRCODE = '22023',
                  MESSAGE = p_table || '.' || p_column || ' has no id sequence';
              END IF;
              EXECUTE 'ALTER SEQUENCE ' || seq::text || ' NO CYCLE';
              SELECT s.seqmax INTO seq_max FROM pg_sequence s WHERE s.seqrelid = seq;
              EXECUTE 'SELECT last_value, is_called FROM ' || seq::text INTO last_id, called;
              handed_out := CASE WHEN called THEN last_id ELSE last_id - 1 END;
              id_ceiling := seq_max / 2;
              IF p_to > handed_out AND p_to <= id_ceiling THEN
                PERFORM setval(seq, p_to, true);
              END IF;
              RETURN NEXT;
            END $$""",
        # The one door for audit history that another database recorded (tenants import).
        # Whatever the caller signed, such a row: is marked with the archive's SHA-256, so it
        # never passes for history made here; belongs to a tenant created in this very
        # transaction (its native tenant.create row has this txid), so it can be attached
        # neither to an existing tenant nor to the platform, nor replayed later; takes that
        # tenant's slug; is not dated in the future; and keeps an id the sequence has passed.
        f"""CREATE OR REPLACE FUNCTION {PRIVATE}.import_audit(
              p_id bigint, p_at text, p_action text, p_actor text, p_acting_as text,
              p_tenant bigint, p_reason text, p_request text, p_details text, p_archive text,
              p_mac text)
            RETURNS void
            LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
            DECLARE slug text; seq regclass; last_id bigint;
            BEGIN
              IF NOT {PRIVATE}.mac_ok(concat_ws(E'\\x1f', 'import_audit', p_id::text,
                   p_at, p_action, p_actor, p_acting_as, coalesce(p_tenant::text, ''),
                   p_reason, p_request, p_details, p_archive), p_mac) THEN
                RAISE EXCEPTION 'imported audit row not signed by the application'
                  USING ERRCODE = '42501';
              END IF;
              IF p_archive IS NULL OR p_archive !~ '^[0-9a-f]{{64}}$' THEN
                RAISE EXCEPTION 'an imported audit row names its archive' USING ERRCODE = '22023';
              END IF;
              IF p_tenant IS NULL OR NOT EXISTS (
                   SELECT 1 FROM {audit} a WHERE a.tenant_id = p_tenant
                   AND a.action = 'tenant.create' AND a.imported_from = ''
                   AND a.txid = txid_current()) THEN
                RAISE EXCEPTION 'imported history belongs only to a tenant created by the import'
                  USING ERRCODE = '42501';
              END IF;
              IF p_at::timestamptz > clock_timestamp() THEN
                RAISE EXCEPTION USING ERRCODE = '22023',
                  MESSAGE = 'an imported audit event is dated in the future: ' || p_at;
              END IF;
              seq := pg_get_serial_sequence('{audit}', 'id')::regclass;
              EXECUTE 'SELECT last_value FROM ' || seq::text INTO last_id;
              IF p_id IS NULL OR p_id > last_id THEN
                RAISE EXCEPTION USING ERRCODE = '22023',
                  MESSAGE = 'audit id ' || coalesce(p_id::text, 'NULL')
                    || ' is above its sequence (' || last_id || '): not reserved';
              END IF;
              SELECT t.slug INTO slug FROM {schema}.tenants_tenant t WHERE t.id = p_tenant;
              INSERT INTO {audit}
                (id, at, actor, acting_as, action, tenant_id, tenant_slug, reason, request_id,
                 details, txid, pid, imported_from)
                VALUES (p_id, p_at::timestamptz, p_actor, p_acting_as, p_action, p_tenant, coalesce(slug, ''),
                        p_reason, p_request, p_details::jsonb, txid_current(), pg_backend_pid(),
                        p_archive);
            END $$""",
        # The search path of the signed tenant's transaction (docs/placement.md): its
        # dedicated schema first, or the home schema alone. Read from the tenant's row at
        # every transaction, so a new placement holds from each process's next transaction.
        # A path names tables, not rows: the policies check the signature on every row the
        # transaction reads or writes. So the row named by the value is looked up before the
        # signature is checked, and a tenant that is not in a dedicated schema (or an id that
        # names no tenant) gets the home schema either way: its transactions pay one check,
        # their policy's, not two. Only a dedicated schema is worth a check here; a value that
        # names one and is not genuine raises, as do a missing schema and a value that is
        # not a tenant's. What SQL learns from that is whether a tenant id is in a dedicated
        # schema, which the schemas' names tell anyone already (docs/security.md).
        f"""CREATE OR REPLACE FUNCTION {PRIVATE}.scope_search_path() RETURNS text
            LANGUAGE plpgsql VOLATILE SECURITY DEFINER {LOOKUP_SETTINGS} AS $$
            DECLARE raw text := current_setting('{SCOPE_SETTING}', true); t bigint; n text;
            BEGIN
              IF NOT coalesce({_NAMES_A_TENANT}, false) THEN
                RAISE EXCEPTION 'no signed tenant scope to route' USING ERRCODE = '42501';
              END IF;
              SELECT placement_name INTO n FROM {schema}.tenants_tenant
                WHERE id = {_NAMED_TENANT} AND placement = 'schema';
              IF NOT FOUND THEN RETURN '{schema}'; END IF;
              t := {PRIVATE}.scope_id('t');
              IF t IS NULL THEN
                RAISE EXCEPTION 'no signed tenant scope to route' USING ERRCODE = '42501';
              END IF;
              IF to_regnamespace(quote_ident(n)) IS NULL THEN
                RAISE EXCEPTION USING ERRCODE = '3F000',
                  MESSAGE = 'dedicated schema ' || n || ' of tenant ' || t || ' does not exist';
              END IF;
              RETURN quote_ident(n) || ', ' || '{schema}';
            END $$""",
        # Whether the signed tenant's rows belong in the tables of schema `target` (or an open
        # break-glass grant writes, as moves and imports do): its placement is one of
        # `placements`, and a dedicated schema's is `target` itself. The restrictive policy
        # PLACEMENT_POLICY of every tenant table in the primary database (placement_check): a
        # tenant writes even its own rows only where it is placed. Restrictive, it is ANDed
        # with the isolation policy, whose check (tenant_id = the signed tenant) has verified
        # the value already: so the tenant the value names is looked up first, and the
        # signature is checked only when that tenant is not placed here. A refused tenant
        # whose move froze `target` wrote from a transaction that resolved its search path
        # before the switch: it is told to retry (the freeze's error,
        # tenants.placement.capture), as the capture trigger would, which runs only after
        # this check.
        f"""CREATE OR REPLACE FUNCTION {PRIVATE}.scope_placed_in(target text, placements text[])
            RETURNS boolean
            LANGUAGE plpgsql STABLE SECURITY DEFINER {LOOKUP_SETTINGS} AS $$
            DECLARE raw text := current_setting('{SCOPE_SETTING}', true); t bigint;
            BEGIN
              IF {_NAMES_A_TENANT} AND EXISTS (SELECT 1 FROM {schema}.tenants_tenant
                   WHERE id = {_NAMED_TENANT} AND placement = ANY (placements)
                   AND (placement <> 'schema' OR placement_name = target)) THEN
                RETURN true;
              END IF;
              t := {PRIVATE}.scope_id('t');
              IF t IS NULL THEN RETURN {PRIVATE}.breakglass_open(); END IF;
              IF to_regclass('{PRIVATE}.{FREEZE_TABLE}') IS NOT NULL THEN
                IF EXISTS (SELECT 1 FROM {PRIVATE}.{FREEZE_TABLE}
                           WHERE tenant_id = t AND schema_name = target) THEN
                  RAISE EXCEPTION USING ERRCODE = '{FROZEN_SQLSTATE}',
                    MESSAGE = 'tenant ' || t || ' is being moved: writes are paused, retry shortly';
                END IF;
              END IF;
              RETURN false;
            END $$""",
        # The one-argument form of the policies made before the two-argument one (a dedicated
        # schema's, until the next migrate makes them again).
        f"""CREATE OR REPLACE FUNCTION {PRIVATE}.scope_placed_in(target text) RETURNS boolean
            LANGUAGE plpgsql STABLE SECURITY DEFINER {LOOKUP_SETTINGS} AS $$
            BEGIN
              RETURN {PRIVATE}.scope_placed_in(target, ARRAY['schema']);
            END $$""",
        # The users with a membership in the signed tenant's dedicated schema: a global
        # table's policy names the membership table by the one it was created with (public's),
        # so it asks this for a schema tenant's members (once per statement: an InitPlan).
        f"""CREATE OR REPLACE FUNCTION {PRIVATE}.scope_member_ids() RETURNS bigint[]
            LANGUAGE plpgsql STABLE SECURITY DEFINER {LOOKUP_SETTINGS} AS $$
            DECLARE t bigint := {PRIVATE}.scope_id('t'); p text; n text; ids bigint[];
            BEGIN
              IF t IS NULL THEN RETURN '{{}}'; END IF;
              SELECT placement, placement_name INTO p, n FROM {schema}.tenants_tenant WHERE id = t;
              IF p IS DISTINCT FROM 'schema'
                 OR to_regclass(quote_ident(n) || '.{_membership_table()}') IS NULL THEN
                RETURN '{{}}';
              END IF;
              EXECUTE 'SELECT coalesce(array_agg(user_id), ''{{}}'') FROM ' || quote_ident(n)
                || '.{_membership_table()} WHERE tenant_id = $1' INTO ids USING t;
              RETURN ids;
            END $$""",
        f"REVOKE ALL ON ALL FUNCTIONS IN SCHEMA {PRIVATE} FROM PUBLIC",
    ]


def _hmac(message: str, *, key: str) -> str:
    """HMAC-SHA256 of the SQL text `message` with the padded key halves of record `key`:
    sha256(outer || sha256(inner || message)), as tenants.db.signing computes it."""
    return f"sha256({key}.outer_pad || sha256({key}.inner_pad || convert_to({message}, 'UTF8')))"


# The tenant a scope value names, read without checking its signature (the variable `raw`
# holds the value): for the lookups whose answer the isolation policy's own check decides
# anyway, routing and the placement check (below). Only digits reach the cast.
_NAMES_A_TENANT = "raw ~ '^t:[0-9]{1,18}:'"
_NAMED_TENANT = "split_part(raw, ':', 2)::bigint"


def _membership_table() -> str:
    """The membership model's table (TENANCY_MEMBERSHIP_MODEL, known to the core by name)."""
    return apps.get_model(settings.TENANCY_MEMBERSHIP_MODEL)._meta.db_table


def ensure_functions_sql(schema: str) -> list[str]:
    """The private schema's statements (idempotent); they run before the first policy."""
    return _functions_sql(schema)


def _executes(statements: list[str]) -> str:
    return "".join(f"EXECUTE $wall_sql${s}$wall_sql$;\n" for s in statements)


def as_one_statement(statements: list[str]) -> str:
    """Several statements as one (a DO block): migrations may run on a connection that sends
    one statement per message (tenants.db.backend)."""
    return f"DO $wall_do$ BEGIN\n{_executes(statements)}END $wall_do$"


def as_one_statement_on_citus_or_not(
    first: list[str],
    *,
    table: str,
    citus_table: list[str],
    citus_installed: list[str],
    otherwise: list[str],
) -> str:
    """`first`, then `citus_table` where `table` (quoted) is a Citus distributed or reference
    table, `citus_installed` where Citus is there but the table is not its, else `otherwise`:
    one statement. Citus's catalog is read by EXECUTE, so the block runs without Citus too."""
    test = (
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition "
        f"WHERE logicalrelid = '{table}'::regclass)"
    )
    return (
        "DO $wall_do$ DECLARE on_citus boolean; citus_table boolean := false; BEGIN\n"
        f"{_executes(first)}"
        "on_citus := to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL;\n"
        f"IF on_citus THEN\nEXECUTE $wall_sql${test}$wall_sql$ INTO citus_table;\nEND IF;\n"
        f"IF citus_table THEN\n{_executes(citus_table)}"
        f"ELSIF on_citus THEN\n{_executes(citus_installed)}"
        f"ELSE\n{_executes(otherwise)}END IF;\n"
        "END $wall_do$"
    )


def _copy_to_workers(cursor, *, inner: bytes, outer: bytes) -> None:
    """On a Citus coordinator: the key on each worker too.

    The policies on the shards call the verifier on the workers, inside the shard's query,
    where Citus refuses to read a reference table; so the key is a plain table on every node,
    and `tenants distribute` copies it (run it again after a key change; `tenants check`
    compares the copies). The break-glass grants are a reference table instead (written
    with their audit row, by 2PC, on every node), which the verifier reads through this
    node's shard (breakglass_open above; docs/citus.md).
    """
    cursor.execute("SELECT to_regproc('pg_catalog.citus_is_coordinator') IS NOT NULL")
    if not cursor.fetchone()[0]:
        return
    cursor.execute("SELECT citus_is_coordinator()")
    if not cursor.fetchone()[0]:
        return
    tables = [s for s in _functions_sql("public") if s.startswith(KEY_TABLE_DDL)]
    # The schema itself (and its privileges) Citus propagates from the coordinator, and
    # refuses to have changed on a worker.
    statements = [
        *tables,
        f"REVOKE ALL ON {PRIVATE}.scope_key FROM PUBLIC",
        f"INSERT INTO {PRIVATE}.scope_key (id, inner_pad, outer_pad) VALUES (1, "
        f"decode('{inner.hex()}', 'hex'), decode('{outer.hex()}', 'hex')) "
        "ON CONFLICT (id) DO UPDATE SET inner_pad = EXCLUDED.inner_pad, "
        "outer_pad = EXCLUDED.outer_pad",
    ]
    cursor.execute(
        "SELECT nodename, nodeport, result FROM run_command_on_workers(%s) WHERE NOT success",
        [f"DO $copy$ BEGIN\n{_executes(statements)}END $copy$"],
    )
    failed = cursor.fetchall()
    if failed:
        raise RuntimeError(f"could not copy the wall's key to the workers: {failed}")


def install(cursor, *, quote, workers: bool = False) -> None:
    """As the owner: the private schema, its functions, the key and the roles' access to them;
    with `workers`, on a Citus coordinator, the key on each worker too (tenants distribute: on
    a connection outside any transaction, since the workers' copies are made on connections of
    their own, which would wait for this one's propagated DDL)."""
    cursor.execute("SELECT current_schema()")
    schema = quote(cursor.fetchone()[0])
    for statement in _functions_sql(schema):
        cursor.execute(statement)
    inner, outer = key_pads(scope_key())
    cursor.execute(
        f"INSERT INTO {PRIVATE}.scope_key (id, inner_pad, outer_pad) VALUES (1, %s, %s) "
        "ON CONFLICT (id) DO UPDATE SET inner_pad = EXCLUDED.inner_pad, "
        "outer_pad = EXCLUDED.outer_pad "
        f"WHERE {PRIVATE}.scope_key.inner_pad IS DISTINCT FROM EXCLUDED.inner_pad",
        [inner, outer],
    )
    if workers:
        _copy_to_workers(cursor, inner=inner, outer=outer)
    for role in (settings.TENANCY_RUNTIME_ROLE, settings.TENANCY_BREAKGLASS_ROLE):
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
        if cursor.fetchone() is None:
            continue
        cursor.execute(f"GRANT USAGE ON SCHEMA {PRIVATE} TO {quote(role)}")
        for function in CALLABLE:
            cursor.execute(f"GRANT EXECUTE ON FUNCTION {PRIVATE}.{function} TO {quote(role)}")
