"""Local HTTP server imitating the vendor APIs of a sandbox world (see `app.create_app`)."""

from sandbox.server.app import create_app, serve
from sandbox.server.state import SandboxState

__all__ = ["SandboxState", "create_app", "serve"]
