"""What the browser sends a widget, delivered the way the kernel delivers it.

The front end's ``model.send(content)`` reaches the kernel as a comm message; the kernel hands
it to the widget's comm (``comm.handle_msg``), which calls the widget's message callbacks.
"""

from __future__ import annotations

from typing import Any


def send_from_browser(widget: Any, content: Any, buffers: list[bytes] | None = None) -> None:
    """Deliver ``content`` (a custom message of the front end) to ``widget``."""
    message = {"content": {"data": {"method": "custom", "content": content}}}
    widget.comm.handle_msg({**message, "buffers": buffers or []})
