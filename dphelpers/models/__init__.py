"""Model files: :mod:`~dphelpers.models.checkpoint` writes and reads them (float16 exports,
training checkpoints, refusal of foreign files) and :mod:`~dphelpers.models.modelfiles` finds
the shipped ones (load-or-train).  Importing this package imports none of them.
"""
__all__ = ["checkpoint", "modelfiles"]
