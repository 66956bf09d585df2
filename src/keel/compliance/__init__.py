"""Compliance: the data-subject index, right of access, right to erasure, retention."""

from keel.compliance._common import RETRAIN_TAG
from keel.compliance._facade import Compliance
from keel.compliance._model import (
    AccessExport,
    ErasedVersion,
    ErasureReport,
    SubjectLocation,
    render_erasure,
    write_access_zip,
)
from keel.compliance._service import ErasureService
from keel.compliance._subjects import SubjectIndex

__all__ = [
    "RETRAIN_TAG",
    "AccessExport",
    "Compliance",
    "ErasedVersion",
    "ErasureReport",
    "ErasureService",
    "SubjectIndex",
    "SubjectLocation",
    "render_erasure",
    "write_access_zip",
]
