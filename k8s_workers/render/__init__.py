"""Rendering: templates/ and data in, file text out (pure)."""
