"""Market data: files (CSV/Parquet), synthetic regimes; quality checks."""
