"""Lessons: ready-to-run scenario files (rumpnet run FILE)."""
