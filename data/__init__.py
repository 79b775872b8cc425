"""Data stage: the simulator, ingestion into the warehouse, and the marts."""
