"""The pipeline: dispatch (SNS) and retry (SQS) flows (``notifier``), the one decision per attempt (``answers``),
the retry schedule (``retry``), dead letters (``deadletter``), and the at-most-once logs (``handoff``, ``ledger``)."""
