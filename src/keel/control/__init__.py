"""The control plane: the trading state every session obeys, its history, and the incident records of every trip and
release, in one store whose place does not depend on the working directory (`keel.runtime.control` finds it).

`records` holds what the store answers with, `schema` its tables, `store` the store itself, `workers` the executor
workers' registry over it, and `legacy` the reader of the place versions before it used (`<var_dir>/keel.db`), so
that a halt recorded there is carried over, not forgotten.
Deliberately free of the journal: `keel kill` imports only this, the settings and SQLAlchemy.
"""
