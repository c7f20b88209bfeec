"""Readers and writers of on-disk model formats."""
