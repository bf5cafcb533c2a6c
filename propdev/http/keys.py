"""Typed application state."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from propdev.config import Settings
    from propdev.node import Node

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
NODE: web.AppKey[Node] = web.AppKey("node")
