"""A region's excluded providers (DESIGN §8): /regions/{code}/excluded-providers.

Beside the registry's views rather than with the regions' (programme/api.py):
an exclusion is a fact about the provider registry (服务机构统一), its service
is providers/exclusions.py, and it shows on the provider (`excluded_in`). The
path starts at the region because the region decides it, as the reconciliation
statement's does (payout/api/reconciliation.py).
"""
from flask import url_for
from marshmallow import Schema, fields

from voucher_service.http import access
from voucher_service.http.common import Blueprint, PageArgs, ResourceSchema, Text, domain_context, page, page_schema
from voucher_service.models import ProviderExclusion
from voucher_service.providers import exclusions

URL = "/regions"
blp = Blueprint("provider_exclusions", __name__,
                description="Providers a region refuses for the vouchers it issues (scheme-wide suspension "
                            "stays with the provider's home region)")


class ExclusionSchema(ResourceSchema):
    region = fields.String(metadata={"description": "the excluding region: its vouchers may not be spent here"})
    provider_id = fields.String()
    reason = fields.String()
    excluded_by = fields.String(metadata={"description": "the principal that excluded the provider"})
    excluded_at = fields.String()


class ReadmissionSchema(ExclusionSchema):
    readmitted_by = fields.String()
    readmitted_at = fields.String()


class ExclusionCreate(Schema):
    provider_id = Text(40)
    reason = Text(500)


def exclusion_view(exclusion: ProviderExclusion) -> dict:
    return exclusion.model_dump()


@blp.route("/<string:code>/excluded-providers")
@blp.arguments(PageArgs, location="query")
@blp.response(200, page_schema(ExclusionSchema, "ExclusionPage"))
def list_excluded_providers(args, code):
    """Every role with a token reads them: SMEs and providers must know where a voucher can be spent."""
    ctx = domain_context()
    result = page(exclusions.exclusions_of(ctx, code), ProviderExclusion.provider_id, args)
    result["items"] = [exclusion_view(e) for e in result["items"]]
    return result


@blp.route("/<string:code>/excluded-providers", methods=["POST"])
@blp.arguments(ExclusionCreate)
@blp.response(201, ExclusionSchema)
def exclude_provider(body, code):
    access.check(access.Facts(region=code))
    ctx = domain_context()
    exclusion = exclusions.exclude_provider(ctx, region=code, **body)
    location = url_for("provider_exclusions.get_excluded_provider", code=code, provider_id=exclusion.provider_id)
    return exclusion_view(exclusion), 201, {"Location": location}


@blp.route("/<string:code>/excluded-providers/<string:provider_id>")
@blp.response(200, ExclusionSchema)
def get_excluded_provider(code, provider_id):
    ctx = domain_context()
    return exclusion_view(exclusions.get_exclusion(ctx, code, provider_id))


@blp.route("/<string:code>/excluded-providers/<string:provider_id>", methods=["DELETE"])
@blp.response(200, ReadmissionSchema)
def readmit_provider(code, provider_id):
    """200 with the lifted exclusion, not 204: like every write of this API, the
    response names the ledger entry it appended (`ledger`), for its receipt."""
    access.check(access.Facts(region=code))
    ctx = domain_context()
    exclusion = exclusions.readmit_provider(ctx, region=code, provider_id=provider_id)
    return {**exclusion_view(exclusion), "readmitted_by": ctx.actor, "readmitted_at": ctx.now_str}
