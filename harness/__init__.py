"""Development tooling, kept out of the shipped package: the local emulators' runner, the sandbox demo, the full
scenario with its chaos and invariants, and the process helpers the tests and benchmarks share.

Run it from the checkout as `python -m harness --help`; nothing in the runtime packages imports it.
"""
