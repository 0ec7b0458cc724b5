"""The broker's HTTP API (FastAPI): ``create_app(settings, deps)``."""

from govshare.api.app import create_app
from govshare.api.context import ApiDeps, ApiSettings, Probe

__all__ = ["ApiDeps", "ApiSettings", "Probe", "create_app"]
