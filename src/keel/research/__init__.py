"""The research toolkit: the numbers a trader decides from, made hard to fool oneself with.

Scorecards over a run's equity and trades, a fast vectorized sweep for search (its winners confirmed by the governed
replay), bias checks on strategies, the data a study runs on, and the gates a strategy must pass to be promoted.
Research reads runs and data; it never trades, and nothing below `keel.research` imports it.
"""
