"""Market data: files (CSV/Parquet) in and out, validated by quality checks; synthetic regimes.

`files` is the entry point; `readers`, `layout`, `timestamps`, `date_and_time` and `cells` are its steps.
"""
