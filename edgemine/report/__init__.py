"""Evaluation reports of classifiers: ``metrics.json``, pictures and an HTML page.

:func:`classification_report` computes the numbers with numpy (no scikit-learn at run time);
:func:`write_report` writes them with ``confusion_matrix.png``, ``history.png``,
``misclassified.png`` (image models) and ``report.html``. The pictures need matplotlib, the
optional extra ``pip install 'edgemine[report]'``.

>>> r = classification_report([0, 1, 1], [[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
>>> round(r["accuracy"], 4)
0.6667
"""

from .metrics import (
    ReportError,
    classification_report,
    format_report,
    labels_as_classes,
    read_labels,
)
from .writer import require_matplotlib, write_report

__all__ = [
    "ReportError",
    "classification_report",
    "format_report",
    "labels_as_classes",
    "read_labels",
    "require_matplotlib",
    "write_report",
]
