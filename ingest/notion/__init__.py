"""Notion: connect an integration, walk what it can see, index it incrementally."""
