"""The JSON API: the metric layer's numbers over HTTP for other programs.

``auterity api`` serves :func:`create_app` with uvicorn. Every answer is computed by the
same library calls as the reports and dashboards, read as the signed-in user (their
role's row filters and PII rule: :func:`auterity.metrics.acting_as`), and says how fresh
its data is and whether it came from the result cache.
"""

from auterity.api.app import API_PREFIX, create_app
from auterity.api.server import serve

__all__ = ["API_PREFIX", "create_app", "serve"]
