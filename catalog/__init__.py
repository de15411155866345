"""The offer catalog shipped with the control plane (offers.toml), read with importlib.resources."""
