"""Interactive Voila dashboards: business, ModelHub and real-time model traffic.

The dashboard notebooks in ``notebooks/dashboards/`` are thin: a ``parameters`` cell and one
call into this package (``dashboards.business(...)``, ``dashboards.modelhub(...)``,
``dashboards.realtime(...)``), which builds the ipywidgets, fetches aggregates through the
analytics library (SQL push-down, pandas only sees aggregates), wires the filters, renders
the Altair charts offline, offers CSV / JSON / PNG exports of the current view and, for the
real-time dashboard, refreshes on a background timer that never blocks cell execution.

Modules
-------
widgets
    The :class:`Dashboard` base class (refresh, draw, first paint, stale data), viewer
    messages, logging.
business_dashboard, modelhub_dashboard, realtime_dashboard
    One per dashboard: its view (data and charts for one set of filters), its class and
    the function its notebook calls.
export
    CSV / JSON / PNG downloads of the current view.
preheat
    Pre-heated kernels: :func:`launch`, waiting for the viewer, refreshing stale data.
serve
    ``auterity serve``, the Voila server (imported on its own: it pulls in Voila).

The pages' CSS and JavaScript live with the Voila template in
``notebooks/dashboards/_share/voila/templates/auterity/``.
"""

from auterity.dashboards.business_dashboard import BusinessDashboard, business, business_view
from auterity.dashboards.export import export_links_html, view_json
from auterity.dashboards.modelhub_dashboard import (
    DAYS_SELECTION,
    LEADERBOARD_COLUMNS,
    MODEL_SELECTION,
    ModelHubDashboard,
    linked_cost_chart,
    modelhub,
    modelhub_tiles,
    modelhub_view,
)
from auterity.dashboards.preheat import (
    ENV_FRESH,
    FRESH_ON_VIEW_S,
    launch,
    refresh_when_viewed,
    wait_for_viewer,
)
from auterity.dashboards.realtime_dashboard import (
    RealtimeDashboard,
    realtime,
    realtime_table_html,
    realtime_tiles,
    realtime_view,
)
from auterity.dashboards.widgets import (
    ALL,
    FIRST_PAINT_MIME,
    Dashboard,
    View,
    age_text,
    configure_logging,
    in_preheated_kernel,
    in_voila,
    viewer_message,
)
from auterity.modelhub.live import realtime_snapshot

__all__ = [
    "ALL",
    "DAYS_SELECTION",
    "ENV_FRESH",
    "FIRST_PAINT_MIME",
    "FRESH_ON_VIEW_S",
    "LEADERBOARD_COLUMNS",
    "MODEL_SELECTION",
    "BusinessDashboard",
    "Dashboard",
    "ModelHubDashboard",
    "RealtimeDashboard",
    "View",
    "age_text",
    "business",
    "business_view",
    "configure_logging",
    "export_links_html",
    "in_preheated_kernel",
    "in_voila",
    "launch",
    "linked_cost_chart",
    "modelhub",
    "modelhub_tiles",
    "modelhub_view",
    "realtime",
    "realtime_snapshot",
    "realtime_table_html",
    "realtime_tiles",
    "realtime_view",
    "refresh_when_viewed",
    "view_json",
    "viewer_message",
    "wait_for_viewer",
]
