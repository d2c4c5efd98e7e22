"""Streaming loaders and the FSDP trainer stage. Not built yet."""
