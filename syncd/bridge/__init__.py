"""The bridge: syncd's canonical orders projected into the seller's ERP tables, and shipments
read from the seller's WMS tables, both described by one mapping file."""
