"""Shipments out: carriers, the intake contract, validation and the confirmShipment body."""
