"""Inbound: what arrives. A published message becomes an ``Event`` (``events``), oxo-flow's own dialect is read
(``oxoflow``), and the ingest function verifies, maps and publishes to the topic (``ingest``, ``topic``)."""
