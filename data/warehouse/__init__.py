"""The financial theme warehouse: read deliveries, validate against the catalog, quarantine, land."""
