-- Recreate what defer_indexes.sql dropped: indexes, then unique constraints, then foreign keys
-- (validated here, in one pass per table).
DO $$
DECLARE
    ddl text;
BEGIN
    FOR ddl IN SELECT create_ddl FROM seed_deferred ORDER BY step DESC, create_ddl LOOP
        EXECUTE ddl;
    END LOOP;
END $$;

DROP TABLE seed_deferred;
