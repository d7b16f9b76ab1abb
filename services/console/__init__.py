"""The duty officer's console: live view, approvals, acknowledgements and delivery coverage.

``create_app(bus, registry, settings, clock=…)`` builds the HTTP service (see
``services.console.app``); ``tail_app`` / ``tail`` is the terminal view
(``services.console.tail``). Design and operation: ``docs/console.md``.
"""

from services.console.app import create_app
from services.console.settings import ConsoleSettings
from services.console.tail import tail, tail_app

__all__ = ["ConsoleSettings", "create_app", "tail", "tail_app"]
