"""The Hugging Face export (stage `export`): the folder layout `datasets` and the Hub read (clips and
metadata.jsonl), the metadata rows, and the dataset card."""
