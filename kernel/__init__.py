"""Shared kernel: config schemas, the catalog, USCC, person hashes and errors.

Every stage may import this package; it imports no stage.
"""
