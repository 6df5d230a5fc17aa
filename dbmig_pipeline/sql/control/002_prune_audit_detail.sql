-- dbmig control schema, version 2: pruning of audit detail rows.
-- The writer role of `dbmig grants` may INSERT into dbmig.audit_log but never UPDATE, DELETE
-- or TRUNCATE it. Old batch-level detail rows are pruned only through this function, which runs
-- with the rights of its owner (whoever applied this version: the admin) and deletes nothing
-- but level = 'detail' rows older than the cutoff; summary rows stay forever.

CREATE FUNCTION dbmig.prune_audit_detail(older_than interval) RETURNS bigint
    LANGUAGE plpgsql
    SECURITY DEFINER
    -- a SECURITY DEFINER function must not resolve names through the caller's search_path
    SET search_path = pg_catalog, pg_temp
    -- the append-only trigger lets level = 'detail' deletes through only while this is on;
    -- set for this call alone and restored on return (SET LOCAL, scoped to the function)
    SET dbmig.pruning = 'on'
AS $$
DECLARE
    deleted bigint;
BEGIN
    IF older_than IS NULL OR older_than < interval '0' THEN
        RAISE EXCEPTION 'dbmig.prune_audit_detail: older_than must be a non-negative interval, got %', older_than
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    DELETE FROM dbmig.audit_log WHERE level = 'detail' AND at < now() - older_than;
    GET DIAGNOSTICS deleted = ROW_COUNT;
    RETURN deleted;
END $$;

REVOKE ALL ON FUNCTION dbmig.prune_audit_detail(interval) FROM PUBLIC;
COMMENT ON FUNCTION dbmig.prune_audit_detail(interval) IS
    'Deletes audit_log rows of level detail older than the cutoff; returns how many. '
    'The only way to delete audit rows: grant EXECUTE, never DELETE on dbmig.audit_log.';
