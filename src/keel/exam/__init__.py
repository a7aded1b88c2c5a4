"""The mock investor exam (seed M31-B): a fixed roster of strategies run day by day under production-like mock
execution — a replay of each day as the baseline, then a paced paper session of it with manual approval in force —
closed out daily with what was proposed, blocked, approved and earned, and audited by safety gates that must find
nothing. `keel exam run` drives it; `keel.exam.gates` audits any finished run on its own.
"""
