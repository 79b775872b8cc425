"""Observation modules: one per source department (group), each owning catalog sub-items."""
