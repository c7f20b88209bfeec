"""Bitsmith's engine: plain Python and torch, never Qt.

The GUI and the CLI both drive it through `engine.api`.
"""

__version__ = "0.1.0.dev0"
