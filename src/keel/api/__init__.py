"""The operator's HTTP API (`keel serve`): the control plane's reads and the operators' decisions over HTTP, with
bearer tokens and roles, through the same services the CLI calls (`keel.approval.service`, `keel.risk.kill_switch`),
so there is no second path to a decision.

`roles` says what each token role may do, `tokens` issues and checks tokens (only a hash is stored), `problems`
renders every error as RFC 9457 problem details, `auth` turns a bearer token into a caller, `audit` records each
mutating call, `routes` holds the endpoints, `app` wires them, `server` runs them on uvicorn and `spec` prints the
OpenAPI document kept as `docs/openapi.json`. Only `app`, `auth`, `audit`, `problems`, `routes`, `server` and `spec`
import FastAPI: `keel token` uses `roles` and `tokens` alone, and starts fast.
"""
