-- dbmig control schema, version 4: a parked row names the parent it waits for,
-- so that a run asks the target which of those parents arrived instead of
-- re-reading every parked row from the source (decision 0009). Rows parked
-- before this version have NULLs here: the next run retries them once, and
-- parks again with the parent recorded whichever still wait.
ALTER TABLE dbmig.row_errors
    ADD COLUMN missing_parent_entity text,
    ADD COLUMN missing_parent_id     bigint;
