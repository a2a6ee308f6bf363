"""Real-time core: configuration, point database, FEPs, events. Imports protocols.base only."""
