"""The API's routes, one router per area: analytics, modelhub, unified, reports, realtime."""
