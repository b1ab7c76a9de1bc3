"""space layer."""
