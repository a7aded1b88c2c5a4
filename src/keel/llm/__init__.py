"""The LLM advisory layer: bounded calls to OpenAI-compatible models whose answers are parsed fail-closed.

Models advise only. Nothing here reaches the supervisor's limits, the approval decision or the executor: a role asks,
gets a validated output or a reason code, and falls back to its deterministic twin on any failure (docs/llm.md).
"""
