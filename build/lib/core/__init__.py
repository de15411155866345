"""The domain package: settings, database and models, state machines, audit, typed Azure clients.

It imports none of api, workers, billing, portal or emulators (import-linter holds that line).
"""
