"""The independent witness of DESIGN §10: a C2SP tlog-witness that a region
runs on its own machine, with its own key and state in one directory D.

It needs nothing of the operator (an import-linter contract in setup.cfg
says so): it reads the operator's log only over HTTP, like any auditor.
Modules: directory (D: key, logs, tokens), state (SQLite: the latest
cosigned checkpoint per log, evidence), service (the add-checkpoint
decision), verifying (the entries check of the verifying mode), app (the
Flask app factory), server (gunicorn), cli (`vouchers witness ...`).
"""
