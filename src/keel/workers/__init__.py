"""Executor workers: separate processes that claim approved intents from the journal and send them, several at once
without a duplicate (the `approved → executing` compare-and-set is the claim), each obeying the control plane's
trading state within milliseconds (`watch`), and the drills that prove it (`drill`, `chaos`)."""
