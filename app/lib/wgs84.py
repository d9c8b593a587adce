"""Projected TWD97/TWD67 metres to WGS84 longitude and latitude (pyproj), for the
systems that want degrees, such as a link to the county's own GIS. The maps
themselves are drawn in the register's projected metres and never need this."""

from __future__ import annotations

import functools

from pyproj import Transformer


@functools.lru_cache(maxsize=8)
def _transformer(epsg: int) -> Transformer:
    return Transformer.from_crs(f"EPSG:{epsg}", "EPSG:4326", always_xy=True)


def to_wgs84(epsg: int, x: float, y: float) -> tuple[float, float]:
    """(longitude, latitude) in degrees of the point (x, y) given in ``epsg``'s metres."""
    lon, lat = _transformer(int(epsg)).transform(float(x), float(y))
    return round(lon, 7), round(lat, 7)
