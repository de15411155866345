"""The ARM templates shipped with the control plane: the façade cluster's step templates and the managed app.

Package data only (read with importlib.resources), so an installed control plane finds them without a checkout.
"""
