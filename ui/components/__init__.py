"""Reusable pieces of the pages: API access and errors, charts, chain diffs, episode shading, result tables."""
