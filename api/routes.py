"""Routes of the active GTFS feed with their shapes as GeoJSON, for maps drawn without tiles."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from psycopg.rows import dict_row

from api.auth import View, view
from api.errors import documented
from api.state import pool_of

router = APIRouter(prefix="/api/v1", tags=["transit"])


@router.get("/routes", dependencies=[view(View.ROUTES)], responses=documented(401))
async def routes(request: Request) -> dict[str, Any]:
    """A GeoJSON FeatureCollection: one MultiLineString per route, every distinct shape of its trips."""
    async with pool_of(request).connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            """WITH feed AS (SELECT feed_id FROM gtfs_feeds WHERE active),
                    route_shapes AS (
                        SELECT DISTINCT t.route_id, t.shape_id FROM gtfs_trips t JOIN feed USING (feed_id))
               SELECT r.route_id, r.short_name, r.long_name, r.route_type, r.color, r.text_color,
                      COALESCE(json_agg(s.coords ORDER BY s.shape_id)
                               FILTER (WHERE s.coords IS NOT NULL), '[]') AS lines
               FROM gtfs_routes r JOIN feed USING (feed_id)
               LEFT JOIN route_shapes rs ON rs.route_id = r.route_id
               LEFT JOIN LATERAL (
                   SELECT p.shape_id, json_agg(json_build_array(p.lon, p.lat) ORDER BY p.seq) AS coords
                   FROM gtfs_shapes p JOIN feed USING (feed_id)
                   WHERE p.shape_id = rs.shape_id GROUP BY p.shape_id) s ON true
               GROUP BY r.route_id, r.short_name, r.long_name, r.route_type, r.color, r.text_color
               ORDER BY r.route_id"""
        )
        rows = await cur.fetchall()
    features = [
        {
            "type": "Feature",
            "id": row["route_id"],
            "geometry": {"type": "MultiLineString", "coordinates": row["lines"]},
            "properties": {
                "route_id": row["route_id"],
                "short_name": row["short_name"],
                "long_name": row["long_name"],
                "route_type": row["route_type"],
                # GTFS route_color / route_text_color as CSS colours; null where the feed gives none.
                "color": f"#{row['color']}" if row["color"] else None,
                "text_color": f"#{row['text_color']}" if row["text_color"] else None,
            },
        }
        for row in rows
    ]
    return {"type": "FeatureCollection", "features": features}
