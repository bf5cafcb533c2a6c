"""Lists filtered by sites: the SQL condition that keeps the rows of some sites only.

``sites`` is None for no filter (organisation-wide staff), else the sites whose rows are kept
(an empty set keeps none). Only bind parameter names are formatted into the SQL, never values.
"""

from __future__ import annotations

from collections.abc import Collection

ALL = "1 = 1"

POINTS_AT = "SELECT id FROM access_points WHERE site_id IN {sites}"
APARTMENTS_AT = (
    "SELECT a.id FROM apartments a JOIN buildings b ON b.id = a.building_id"
    " WHERE b.site_id IN {sites}"
)


def at_sites(column: str, sites: Collection[str] | None) -> tuple[str, dict[str, str]]:
    """``column IN (:site0, ...)`` and its parameters; ``1 = 1`` without a filter."""
    if sites is None:
        return ALL, {}
    if not sites:
        return "1 = 0", {}
    params = {f"site{i}": s for i, s in enumerate(sorted(sites))}
    return f"{column} IN ({', '.join(':' + k for k in params)})", params


def in_subquery(
    column: str, subquery: str, sites: Collection[str] | None
) -> tuple[str, dict[str, str]]:
    """``column IN (subquery)``, the ``{sites}`` of ``subquery`` being the sites' list."""
    if sites is None:
        return ALL, {}
    if not sites:
        return "1 = 0", {}
    params = {f"site{i}": s for i, s in enumerate(sorted(sites))}
    listed = "(" + ", ".join(":" + k for k in params) + ")"
    return f"{column} IN ({subquery.format(sites=listed)})", params
