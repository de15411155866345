"""Browser tests of the portal: Playwright driving Debian chromium against the running control plane."""
