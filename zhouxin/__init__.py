"""Composition root: the `zhouxin` CLI wires each stage's own commands together (no domain logic here)."""
