-- A bulk load is several times faster without per-row foreign-key checks and
-- index maintenance. Note the foreign keys, unique constraints and secondary
-- indexes of the six legacy tables (primary keys stay), then drop them;
-- restore_indexes.sql recreates them, same names and definitions, in the same
-- transaction. The DDL is built on the server: regclass and quote_ident quote
-- every identifier.
CREATE TEMP TABLE seed_deferred ON COMMIT DROP AS
WITH legacy AS (
    SELECT unnest(ARRAY['public.offices', 'public.doctors', 'public.patients', 'public.orders', 'public.jaws',
                        'public.system_messages']::regclass[]) AS rel
)
SELECT 1 AS step,
       'ALTER TABLE ' || c.conrelid::regclass || ' DROP CONSTRAINT ' || quote_ident(c.conname) AS drop_ddl,
       'ALTER TABLE ' || c.conrelid::regclass || ' ADD CONSTRAINT ' || quote_ident(c.conname) || ' '
           || pg_get_constraintdef(c.oid) AS create_ddl
FROM pg_constraint AS c JOIN legacy ON legacy.rel = c.conrelid
WHERE c.contype = 'f'
UNION ALL
SELECT 2,
       'ALTER TABLE ' || c.conrelid::regclass || ' DROP CONSTRAINT ' || quote_ident(c.conname),
       'ALTER TABLE ' || c.conrelid::regclass || ' ADD CONSTRAINT ' || quote_ident(c.conname) || ' '
           || pg_get_constraintdef(c.oid)
FROM pg_constraint AS c JOIN legacy ON legacy.rel = c.conrelid
WHERE c.contype = 'u'
  -- a unique constraint that some other table's foreign key relies on stays
  AND NOT EXISTS (SELECT 1 FROM pg_constraint AS f WHERE f.contype = 'f' AND f.conindid = c.conindid
                    AND f.conrelid NOT IN (SELECT rel FROM legacy))
UNION ALL
SELECT 3, 'DROP INDEX ' || i.indexrelid::regclass, pg_get_indexdef(i.indexrelid)
FROM pg_index AS i JOIN legacy ON legacy.rel = i.indrelid
WHERE NOT EXISTS (SELECT 1 FROM pg_constraint AS c WHERE c.conindid = i.indexrelid);

DO $$
DECLARE
    ddl text;
BEGIN
    FOR ddl IN SELECT drop_ddl FROM seed_deferred ORDER BY step, drop_ddl LOOP
        EXECUTE ddl;
    END LOOP;
END $$;
