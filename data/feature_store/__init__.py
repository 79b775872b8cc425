"""Publishing the warehouse and marts as Feast features: sources, definitions, store, fast paths."""
