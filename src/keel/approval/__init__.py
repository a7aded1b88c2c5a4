"""Manual approval across processes: a session publishes each intent that waits for a human to the control plane
(`keel.control`), an operator decides it there from another process, and the session journals the decision, checks
the intent again and sends it, then records the outcome.

`service` is the one path every approver takes (the CLI today, the API and the console later): who may decide, the
separation of duties, and the compare-and-set on exactly what will be sent.
"""
