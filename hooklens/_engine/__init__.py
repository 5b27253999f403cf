"""The engine: a Hugging Face model as loaded, with hook points, caches and partial forwards.

Nothing is imported here on purpose: the package's front door is ``hooklens/__init__.py``, and
``architectures/`` reads ``points`` (the one table of hook points) without pulling in the rest.
See ``README.md`` beside this file for the mechanism.
"""
