"""Outbound: one POST to one webhook. Build and sign the request (``delivery``, ``signing``), dial only vetted
addresses (``transport``, ``guard``), trip per target (``breaker``); ``verify`` is the receiver's side of ``signing``."""
