"""The web pages under /ui/: browse what you may pull; admins see and explain the rules."""

from gateway.ui.setup import setup_ui

__all__ = ["setup_ui"]
