"""Marts: monthly as-of tables per enterprise built from the warehouse (DuckDB SQL)."""
