"""The project's exception classes.

Every error a user can cause derives from :class:`EdgeplexError`; messages
name the model element at fault (op index and name, tensor name, plugin).
"""
from __future__ import annotations


class EdgeplexError(Exception):
    """Base class of every error edgeplex raises on purpose."""


class ModelError(EdgeplexError):
    """A model file is malformed, inconsistent or outside what we accept."""


class UnsupportedOpError(EdgeplexError):
    """An op, op version, type or option that no chosen kernel implements."""


class DelegateError(EdgeplexError):
    """A delegate plugin failed to load, prepare or run."""


class ConfigError(EdgeplexError):
    """A bad configuration key, value, delegate name or option."""


class InterpreterError(EdgeplexError, ValueError, RuntimeError):
    """The interpreter was used out of order or given a bad tensor.

    Also a :class:`ValueError` and a :class:`RuntimeError`: tf.lite's
    Interpreter raises one or the other for these mistakes (ValueError for a
    bad set_tensor, RuntimeError for invoke before allocation or a strict
    resize), so ``except`` clauses written for it keep working.
    """
