"""Data: sources, dataset versions, transforms, validation, classification and anonymization."""

from keel.data._anonymize import (
    ANONYMIZATION_KINDS,
    AnonymizationRecord,
    AnonymizationStep,
    apply_anonymization,
    enforce_k_anonymity,
    k_anonymity,
    parse_steps,
)
from keel.data._checks import (
    CHECK_KINDS,
    Check,
    CheckResult,
    CheckSuite,
    ValidationResult,
    parse_suite,
    run_suite,
)
from keel.data._classify import (
    Classification,
    ColumnClassification,
    Sensitivity,
    classify_frame,
    propagate,
)
from keel.data._csv import CsvSource
from keel.data._facade import Datasets
from keel.data._folders import ArchiveSource, FolderSource
from keel.data._gate import DatasetGate
from keel.data._model import (
    ColumnChange,
    Dataset,
    DatasetVersion,
    GcReport,
    Part,
    Reject,
    StoredReport,
    VersionDiff,
)
from keel.data._report import render_html, render_text
from keel.data._service import DatasetService, VersionRef
from keel.data._sources import (
    BlobSink,
    FrameSource,
    JsonSource,
    ParquetSource,
    Source,
    SourceBatch,
    source_for,
)
from keel.data._sql import SqlSource
from keel.data._streams import JetStreamSource, Message, RedisStreamSource, StreamSource
from keel.data._transforms import CleanStep, apply_steps, parse_transform

__all__ = [
    "ANONYMIZATION_KINDS",
    "CHECK_KINDS",
    "AnonymizationRecord",
    "AnonymizationStep",
    "ArchiveSource",
    "BlobSink",
    "Check",
    "CheckResult",
    "CheckSuite",
    "Classification",
    "CleanStep",
    "ColumnChange",
    "ColumnClassification",
    "CsvSource",
    "Dataset",
    "DatasetGate",
    "DatasetService",
    "DatasetVersion",
    "Datasets",
    "FolderSource",
    "FrameSource",
    "GcReport",
    "JetStreamSource",
    "JsonSource",
    "Message",
    "ParquetSource",
    "Part",
    "RedisStreamSource",
    "Reject",
    "Sensitivity",
    "Source",
    "SourceBatch",
    "SqlSource",
    "StoredReport",
    "StreamSource",
    "ValidationResult",
    "VersionDiff",
    "VersionRef",
    "apply_anonymization",
    "apply_steps",
    "classify_frame",
    "enforce_k_anonymity",
    "k_anonymity",
    "parse_steps",
    "parse_suite",
    "parse_transform",
    "propagate",
    "render_html",
    "render_text",
    "run_suite",
    "source_for",
]
