"""The model of the phenomenon, shared by training and the service: the emergence curve and its derived values,
its projection and correction (`curve`), the scale term (`scale`) and the mechanism's margin model (`mechanism`).

Features (config → rows) live in `features/`; this package reads their schema and nothing else of ours.
"""
