"""The web pages under /ui/: browse what you may pull; admins see and explain the rules."""
