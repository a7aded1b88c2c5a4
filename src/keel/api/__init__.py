"""The operator's HTTP API (`keel serve`): the control plane's reads and the operators' decisions over HTTP, with
bearer tokens and roles, through the same services the CLI calls (`keel.approval.service`, `keel.risk.kill_switch`),
so there is no second path to a decision; the runs' journals, read-only; and the Prometheus metrics.

`roles` says what each token role may do, `tokens` issues and checks tokens (only a hash is stored), `problems`
renders every error as RFC 9457 problem details, `auth` turns a bearer token into a caller, `audit` records each
mutating call, `journal` reads a run's journal without ever writing to its folder, `metrics` holds the frozen metrics
schema and derives its values at scrape time, `routes` holds the endpoints (the live event stream among them), `app`
wires them, `server` runs them on uvicorn and `spec` prints the OpenAPI document kept as `docs/openapi.json`. Only
`app`, `auth`, `audit`, `journal`, `problems`, `routes`, `server` and `spec` import FastAPI: `keel token` uses `roles`
and `tokens` alone, and starts fast.
"""
