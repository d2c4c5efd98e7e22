"""winnow's curation pipeline: crawl files in, curated Parquet shards out."""
