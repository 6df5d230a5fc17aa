"""dbmig: differential migration from the legacy PostgreSQL schema to the new one."""
