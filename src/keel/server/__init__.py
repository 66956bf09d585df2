"""The REST server: an app factory over the same services as local mode, with one guard."""

from keel.server._app import build_services, create_app
from keel.server._errors import ERROR_STATUS

__all__ = ["ERROR_STATUS", "build_services", "create_app"]
