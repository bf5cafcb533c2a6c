"""``/admin/api/v1/sites``, ``/buildings``, ``/apartments``: the estate, for operators."""

from __future__ import annotations

from aiohttp import web

from propdev.http import schemas
from propdev.http.openapi import Param, doc
from propdev.http.routes.manage_support import (
    CONFLICT,
    ID,
    INVALID,
    NAME,
    TAGS,
    created,
    deleted,
    listed,
    management,
    text,
    updated,
)
from propdev.http.scope import LISTED, ORGANISATION_ONLY, At, Source, scoped
from propdev.staff import Action, Kind

routes = web.RouteTableDef()

TIMEZONE: schemas.JSONSchema = {
    "type": "string",
    "examples": ["Europe/Moscow"],
    "description": "IANA time zone; schedules of rights are read in it",
}
SITE = schemas.named(
    "Site",
    schemas.object_of(
        {"id": schemas.STRING, "name": schemas.STRING, "timezone": schemas.STRING},
        required=["id", "name", "timezone"],
    ),
)
SITE_REQUEST = schemas.named(
    "SiteRequest",
    schemas.object_of(
        {"id": ID, "name": NAME, "timezone": TIMEZONE}, required=["id", "name"], additional=False
    ),
)
SITE_CHANGE = schemas.named(
    "SiteChange",
    schemas.object_of({"name": NAME, "timezone": TIMEZONE}, additional=False),
)
BUILDING = schemas.named(
    "Building",
    schemas.object_of(
        {"id": schemas.STRING, "site_id": schemas.STRING, "name": schemas.STRING},
        required=["id", "site_id", "name"],
    ),
)
BUILDING_REQUEST = schemas.named(
    "BuildingRequest",
    schemas.object_of(
        {"id": ID, "site_id": ID, "name": NAME},
        required=["id", "site_id", "name"],
        additional=False,
    ),
)
NAME_CHANGE = schemas.named(
    "NameChange",
    schemas.object_of({"name": NAME}, additional=False),
)
APARTMENT = schemas.named(
    "Apartment",
    schemas.object_of(
        {
            "id": schemas.STRING,
            "building_id": schemas.STRING,
            "number": schemas.STRING,
            "residents": {"type": "integer", "description": "residents living there now"},
        },
        required=["id", "building_id", "number", "residents"],
    ),
)
NUMBER = text(32)
APARTMENT_REQUEST = schemas.named(
    "ApartmentRequest",
    schemas.object_of(
        {
            "id": {**ID, "description": "default `<building_id>-<number>`"},
            "building_id": ID,
            "number": NUMBER,
        },
        required=["building_id", "number"],
        additional=False,
    ),
)
APARTMENT_CHANGE = schemas.named(
    "ApartmentChange",
    schemas.object_of({"number": NUMBER}, additional=False),
)


# -- sites -----------------------------------------------------------------------------------


@routes.get("/admin/api/v1/sites")
@scoped(Action.ESTATE_READ, LISTED)
@doc("List sites", tags=TAGS, responses={200: schemas.array_of(SITE)})
async def list_sites(request: web.Request) -> web.Response:
    return await listed(request, management(request).estate.sites)


@routes.post("/admin/api/v1/sites")
@scoped(Action.ESTATE_MANAGE, ORGANISATION_ONLY)
@doc(
    "Create a site",
    description="Audited as `site.create`.",
    tags=TAGS,
    request=SITE_REQUEST,
    responses={201: SITE, 409: CONFLICT, 422: INVALID},
)
async def create_site(request: web.Request) -> web.Response:
    return await created(request, management(request).estate.create_site)


@routes.patch("/admin/api/v1/sites/{id}")
@scoped(Action.ESTATE_MANAGE, At(Kind.SITE))
@doc(
    "Rename a site or change its time zone",
    description="Audited as `site.update`.",
    tags=TAGS,
    request=SITE_CHANGE,
    responses={200: SITE, 404: "No such site.", 422: INVALID},
)
async def update_site(request: web.Request) -> web.Response:
    return await updated(request, management(request).estate.update_site)


@routes.delete("/admin/api/v1/sites/{id}")
@scoped(Action.ESTATE_MANAGE, ORGANISATION_ONLY)
@doc(
    "Delete an empty site",
    description="Refused (409) while the site has buildings. Audited as `site.delete`.",
    tags=TAGS,
    responses={204: None, 404: "No such site.", 409: "The site still has buildings."},
)
async def delete_site(request: web.Request) -> web.Response:
    return await deleted(request, management(request).estate.delete_site)


# -- buildings -------------------------------------------------------------------------------


@routes.get("/admin/api/v1/buildings")
@scoped(Action.ESTATE_READ, At(Kind.SITE, "site_id", Source.QUERY), LISTED)
@doc(
    "List buildings",
    tags=TAGS,
    query=[Param("site_id", description="only the buildings of this site")],
    responses={200: schemas.array_of(BUILDING)},
)
async def list_buildings(request: web.Request) -> web.Response:
    return await listed(request, management(request).estate.buildings, "site_id")


@routes.post("/admin/api/v1/buildings")
@scoped(Action.ESTATE_MANAGE, At(Kind.SITE, "site_id", Source.BODY))
@doc(
    "Create a building in a site",
    description="Audited as `building.create`.",
    tags=TAGS,
    request=BUILDING_REQUEST,
    responses={201: BUILDING, 409: CONFLICT, 422: INVALID},
)
async def create_building(request: web.Request) -> web.Response:
    return await created(request, management(request).estate.create_building)


@routes.patch("/admin/api/v1/buildings/{id}")
@scoped(Action.ESTATE_MANAGE, At(Kind.BUILDING), At(Kind.SITE, "site_id", Source.BODY))
@doc(
    "Rename a building",
    description="Audited as `building.update`.",
    tags=TAGS,
    request=NAME_CHANGE,
    responses={200: BUILDING, 404: "No such building.", 422: INVALID},
)
async def update_building(request: web.Request) -> web.Response:
    return await updated(request, management(request).estate.update_building)


@routes.delete("/admin/api/v1/buildings/{id}")
@scoped(Action.ESTATE_MANAGE, At(Kind.BUILDING))
@doc(
    "Delete an empty building",
    description=(
        "Refused (409) while the building has access points or apartments. Audited as "
        "`building.delete`."
    ),
    tags=TAGS,
    responses={204: None, 404: "No such building.", 409: "Still has access points or apartments."},
)
async def delete_building(request: web.Request) -> web.Response:
    return await deleted(request, management(request).estate.delete_building)


# -- apartments ------------------------------------------------------------------------------


@routes.get("/admin/api/v1/apartments")
@scoped(Action.ESTATE_READ, At(Kind.BUILDING, "building_id", Source.QUERY), LISTED)
@doc(
    "List apartments",
    tags=TAGS,
    query=[Param("building_id", description="only the apartments of this building")],
    responses={200: schemas.array_of(APARTMENT)},
)
async def list_apartments(request: web.Request) -> web.Response:
    return await listed(request, management(request).estate.apartments, "building_id")


@routes.post("/admin/api/v1/apartments")
@scoped(Action.ESTATE_MANAGE, At(Kind.BUILDING, "building_id", Source.BODY))
@doc(
    "Create an apartment in a building",
    description="Numbers are unique within a building. Audited as `apartment.create`.",
    tags=TAGS,
    request=APARTMENT_REQUEST,
    responses={201: APARTMENT, 409: CONFLICT, 422: INVALID},
)
async def create_apartment(request: web.Request) -> web.Response:
    return await created(request, management(request).estate.create_apartment)


@routes.patch("/admin/api/v1/apartments/{id}")
@scoped(Action.ESTATE_MANAGE, At(Kind.APARTMENT), At(Kind.BUILDING, "building_id", Source.BODY))
@doc(
    "Renumber an apartment",
    description="Audited as `apartment.update`.",
    tags=TAGS,
    request=APARTMENT_CHANGE,
    responses={200: APARTMENT, 404: "No such apartment.", 409: CONFLICT, 422: INVALID},
)
async def update_apartment(request: web.Request) -> web.Response:
    return await updated(request, management(request).estate.update_apartment)


@routes.delete("/admin/api/v1/apartments/{id}")
@scoped(Action.ESTATE_MANAGE, At(Kind.APARTMENT))
@doc(
    "Delete an apartment nobody lives in",
    description="Refused (409) while residents live there. Audited as `apartment.delete`.",
    tags=TAGS,
    responses={204: None, 404: "No such apartment.", 409: "Residents live there."},
)
async def delete_apartment(request: web.Request) -> web.Response:
    return await deleted(request, management(request).estate.delete_apartment)
