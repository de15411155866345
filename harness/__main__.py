"""`python -m harness`: the sandbox and the emulators, from the checkout."""

from harness.cli import app

app()
