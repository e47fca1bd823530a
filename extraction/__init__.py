"""Measure behaviour metrics (massive activations, layer linearity) over checkpoint series."""
