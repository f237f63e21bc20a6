"""Synthetic demo data: a deterministic world for every system the platform analyses.

* :mod:`~auterity.demo.catalogue`: models, features, markets, plans, traffic shapes;
* :mod:`~auterity.demo.world`: the configuration, random streams, calendar, planted effects;
* :mod:`~auterity.demo.business` and :mod:`~auterity.demo.modelhub`: the rows;
* :mod:`~auterity.demo.generate`: the world as chunks, built into a warehouse
  (``auterity demo-data`` is its command).
"""
