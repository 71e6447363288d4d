"""Test helpers shared by several areas (e.g. the fake OpenAI-compatible teacher server)."""
