"""Loaders (files, Notion), splitting, incremental indexing and sync services."""
