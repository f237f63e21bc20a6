"""Privacy duties: GDPR export and erasure of a customer (:mod:`~auterity.privacy.gdpr`).

This layer sits above the reports (it scans and removes kept report artifacts) and
below the command line.
"""

from auterity.privacy import gdpr

__all__ = ["gdpr"]
