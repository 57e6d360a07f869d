"""Small helpers: config location, atomic file output, metric tables."""
