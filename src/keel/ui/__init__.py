"""The web UI: server-rendered pages over Keel's services, served by ``keel server`` at /ui."""

from keel.ui._app import is_page, mount_ui
from keel.ui._charts import align_curves
from keel.ui._layout import layered_layout
from keel.ui._sessions import Session, SessionStore

__all__ = ["Session", "SessionStore", "align_curves", "is_page", "layered_layout", "mount_ui"]
