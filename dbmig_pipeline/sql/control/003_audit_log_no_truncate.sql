-- dbmig control schema, version 3: TRUNCATE cannot empty the audit log either
-- (row triggers do not fire on TRUNCATE; only the role's grants stopped it).
CREATE FUNCTION dbmig.audit_log_no_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'dbmig.audit_log is append-only (TRUNCATE refused)'
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON dbmig.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION dbmig.audit_log_no_truncate();
