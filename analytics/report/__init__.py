"""Writing results: JSON, Parquet, HTML and terminal tables. Files are written atomically."""
