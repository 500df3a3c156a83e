"""Client-side helpers (the full SDK builds on these)."""
