"""The AWS adapters: environment (``settings``), real clients built once (``wiring``), S3 configs
(``config_store``), SQS (``queues``), SSM and Secrets Manager (``references``), Logger and metrics (``observability``)."""
