"""Registers the ``wrapped`` backend (tests/plugins/wrapped_impl): the one registry entry a
new backend needs. Loaded through NETPARITY_PLUGINS=netparity_wrapped."""
from netparity.backends import BackendSpec, register

register(BackendSpec("wrapped", "wrapped_impl", paths=("manual",), devices=("cpu",)))
