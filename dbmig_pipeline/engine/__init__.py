"""The Dagster-free core: plain functions over database connections."""
