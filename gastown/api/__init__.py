"""The versioned JSON API (/api/v1/) that agents and their runtime call (domain.md §8)."""
