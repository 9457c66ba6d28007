"""Local stand-ins for AWS and for webhook receivers: moto server, loopback HTTP, in-process invoke.

Used by ``make demo``, the Docker-free ``scripts/invoke.py`` and the end-to-end tests. Not part of
the deployed layer.
"""
