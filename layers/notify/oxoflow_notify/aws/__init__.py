"""The AWS adapters (built once by the composition root, ``oxoflow_notify.wiring``): environment (``settings``), S3 configs
(``config_store``), SQS (``queues``), SSM and Secrets Manager (``references``), Logger and metrics (``observability``)."""
