"""Simulator of a Zhoushan-like SME economy with a known ground truth (shared/domain/simulation.md)."""
