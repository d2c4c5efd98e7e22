"""The decoder-only transformer: architecture only (tokens in, logits out). Not built yet."""
