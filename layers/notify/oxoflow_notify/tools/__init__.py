"""The operator tools: the ``oxoflow-notify`` command (``cli``), following a run's log (``follow``), re-delivering
dead letters (``replay``), republishing failed invocations (``recovery``)."""
