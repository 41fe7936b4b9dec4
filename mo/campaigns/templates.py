"""Channel templates of a campaign: checked against what the providers registered, rendered from the product
catalogue and the customer's published profile.

One source of product facts on every channel (seed 000): a template never states a product fact itself, it
names it, ``{{product.sum_insured}}``, and the fact comes from the catalogue (the ``products`` table and
schemas/products/catalogue.yaml, as GET /v1/products serves it). The customer's facts come from the published
profile, ``{{profile.name_masked}}``.

The placeholder syntax is deliberately tiny and strict: ``{{ namespace.field }}`` and nothing else. No
expressions, filters, attribute walks or code: a template is data, so a marketer's text can never run anything.
A placeholder naming a field that does not exist, or any other ``{{``/``}}``, is an error naming it.

What a channel's template document holds (``campaigns.channels``, a list by preference)::

    {"channel": "sms", "template": {"sign_name": "中安保险", "template_code": "SMS_RENEWAL_01",
                                    "params": {"name": "{{profile.name_masked}}", ...}}}
    {"channel": "wechat", "template": {"template_id": "TM_RENEWAL_REMINDER", "url": "https://...",
                                       "data": {"thing1": "{{product.name}}", ...}}}
    {"channel": "push", "template": {"title": "...", "body": "...", "extras": {"page": "renewal"}}}
    {"channel": "coupon", "template": {"stock_id": "STOCK_AUTO_50"}}

The registrations (signatures, SMS and WeChat templates, push limits, coupon stocks) are in
schemas/channels/templates.yaml; the provider sandbox reads the same file.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from mo.config import SCHEMAS_DIR
from mo.errors import MoError

REGISTRY_PATH = SCHEMAS_DIR / "channels" / "templates.yaml"
CHANNELS = ("sms", "wechat", "push", "coupon")

PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+)\.([a-z_][a-z0-9_]*)\s*\}\}")
SMS_PARAM = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

# The catalogue's facts a template may name (mo.catalogue.product_facts serves exactly these).
PRODUCT_FIELDS = (
    "product_code",
    "name",
    "line",
    "risk_level",
    "term_months",
    "base_premium",
    "premium_basis",
    "sum_insured",
    "coverage_region",
    "excluded_regions",
    "payment_modes",
)
OFFER_FIELDS = ("type", "product_code", "stock_id", "coupon_value", "description")
CAMPAIGN_FIELDS = ("campaign_code", "name", "ends_at")
# A value's width when it is not known yet (checks before a customer is chosen): the widest usual rendering.
ESTIMATED_WIDTH = {"string": 8, "int": 6, "bigint": 10, "double": 10, "date": 10, "timestamp": 19, "boolean": 1}


class TemplateError(MoError):
    """A template cannot be used; ``problems`` are (JSON pointer within the channel, message)."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p or '/'}: {m}" for p, m in problems))


@cache
def registry(path: Path = REGISTRY_PATH) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@cache
def profile_fields() -> frozenset[str]:
    """Published profile columns a template may name: the segmentable scalars (no join tokens, no maps)."""
    from mo.segments.rules import profile_columns

    return frozenset(name for name, column in profile_columns().items() if column.segmentable)


def _profile_type(name: str) -> str:
    from mo.segments.rules import profile_columns

    column = profile_columns().get(name)
    return column.type if column is not None else "string"


def known_fields(namespace: str) -> Collection[str] | None:
    fields: dict[str, Collection[str]] = {
        "product": PRODUCT_FIELDS,
        "profile": profile_fields(),
        "offer": OFFER_FIELDS,
        "campaign": CAMPAIGN_FIELDS,
    }
    return fields.get(namespace)


def placeholder_problems(text: str, pointer: str) -> list[tuple[str, str]]:
    """Every malformed or unknown placeholder in ``text``, each named."""
    problems: list[tuple[str, str]] = []
    for match in PLACEHOLDER.finditer(text):
        namespace, name = match.groups()
        fields = known_fields(namespace)
        if fields is None:
            problems.append((pointer, f"unknown placeholder {match.group(0)}: namespace {namespace!r} is not one of "
                                      "product, profile, offer, campaign"))  # fmt: skip
        elif name not in fields:
            problems.append((pointer, f"unknown placeholder {match.group(0)}: {namespace} has no field {name!r}"))
    rest = PLACEHOLDER.sub("", text)
    if "{{" in rest or "}}" in rest:
        fragment = rest[max(0, rest.find("{{") if "{{" in rest else rest.find("}}")) :][:40]
        problems.append((pointer, f"malformed placeholder near {fragment!r}: only {{{{namespace.field}}}} is allowed"))
    return problems


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, float | Decimal):
        number = float(value)
        return str(int(number)) if number.is_integer() else f"{number:.2f}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return "、".join(format_value(v) for v in value)
    return str(value)


@dataclass(frozen=True)
class RenderContext:
    """The facts a template is rendered from. ``profile=None``: no customer yet (widths are estimated)."""

    product: Mapping[str, Any] | None
    offer: Mapping[str, Any]
    campaign: Mapping[str, Any]
    profile: Mapping[str, Any] | None = None
    settings: Any = None  # mo.config.Settings for SMS short links (the API's address, the allow-list); None: read


def render_text(text: str, context: RenderContext, pointer: str) -> tuple[str, list[tuple[str, str]]]:
    """``text`` with its placeholders replaced; problems for unknown placeholders and missing values. Without a
    profile, profile placeholders become a run of '*' as wide as their usual value (an estimate for checks)."""
    problems = placeholder_problems(text, pointer)
    if problems:
        return text, problems

    def value(match: re.Match[str]) -> str:
        namespace, name = match.groups()
        if namespace == "profile" and context.profile is None:
            return "*" * ESTIMATED_WIDTH.get(_profile_type(name), 8)
        source = {"product": context.product, "profile": context.profile, "offer": context.offer,
                  "campaign": context.campaign}[namespace]  # fmt: skip
        if source is None:
            problems.append((pointer, f"{match.group(0)}: the campaign offers no product"))
            return ""
        found = source.get(name)
        if found is None or found == "" or found == []:
            problems.append((pointer, f"{match.group(0)} has no value"))
            return ""
        return format_value(found)

    return PLACEHOLDER.sub(value, text), problems


def sms_length(text: str) -> tuple[int, int]:
    """(characters, parts) as Chinese SMS providers count: every character is one; up to ``single`` is one
    message, longer texts are split into parts of ``multipart`` characters."""
    limits = registry()["sms"]["length"]
    length = len(text)
    if length <= limits["single"]:
        return length, 1 if length else 0
    return length, math.ceil(length / limits["multipart"])


@dataclass
class Rendered:
    """A channel's message for one customer (or, without a profile, its estimate), and what is wrong with it."""

    channel: str
    payload: dict[str, Any] = field(default_factory=dict)  # what the channel adapter sends (docs/campaigns.md)
    preview: dict[str, Any] = field(default_factory=dict)  # what a person checks before approval
    problems: list[tuple[str, str]] = field(default_factory=list)


def _string(template: Mapping[str, Any], key: str, problems: list[tuple[str, str]], *, required: bool = True) -> str:
    value = template.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value:
        problems.append((f"/template/{key}", "required (a non-empty string)"))
        return ""
    return value


def _sms(template: Mapping[str, Any], context: RenderContext, out: Rendered) -> None:
    config = registry()["sms"]
    problems = out.problems
    sign_name = _string(template, "sign_name", problems)
    if sign_name and sign_name not in config["signatures"]:
        problems.append(("/template/sign_name", f"signature {sign_name!r} is not registered with the SMS provider; "
                                                f"registered: {', '.join(config['signatures'])}"))  # fmt: skip
    code = _string(template, "template_code", problems)
    registered = config["templates"].get(code) if code else None
    if code and registered is None:
        problems.append(("/template/template_code", f"SMS template {code!r} is not registered with the provider"))
    params = template.get("params") or {}
    if not isinstance(params, Mapping):
        problems.append(("/template/params", "an object of template variables"))
        return
    if registered is None:
        return
    rendered_params: dict[str, str] = {}
    received: dict[str, str] = {}  # what the customer reads: a link variable becomes its tracked short link
    link_params = registered.get("links") or []
    for name in registered["params"]:
        if name not in params:
            problems.append((f"/template/params/{name}", f"missing: template {code} needs variable {name!r}"))
            continue
        raw = params[name]
        if not isinstance(raw, str):
            problems.append((f"/template/params/{name}", "a string"))
            continue
        text, found = render_text(raw, context, f"/template/params/{name}")
        problems.extend(found)
        shown = text
        if name in link_params:
            shown = _sms_link(text, f"/template/params/{name}", problems, context.settings)
        if len(shown) > config["param_max_length"]:
            what = "the tracked short link is" if name in link_params else "once rendered:"
            problems.append((f"/template/params/{name}", f"{len(shown)} characters {what} over the provider's "
                                                         f"{config['param_max_length']} per variable"))  # fmt: skip
        rendered_params[name] = text
        received[name] = shown
    for name in params:
        if name not in registered["params"]:
            problems.append((f"/template/params/{name}", f"template {code} has no variable {name!r}"))
    body = SMS_PARAM.sub(lambda m: received.get(m.group(1), m.group(0)), registered["text"])
    text = f"【{sign_name}】{body}"
    length, parts = sms_length(text)
    limits = config["length"]
    if parts > limits["max_parts"]:
        problems.append(("/template/params", f"SMS of {length} characters needs {parts} parts: over the provider's "
                                             f"{limits['max_parts']} ({limits['max_parts'] * limits['multipart']} "
                                             "characters)"))  # fmt: skip
    out.payload = {"sign_name": sign_name, "template_code": code, "template_param": rendered_params}
    out.preview = {"text": text, "length": length, "parts": parts}


def _sms_link(url: str, pointer: str, problems: list[tuple[str, str]], settings: Any = None) -> str:
    """A link variable's target must be an allowed http(s) URL; the customer receives the tracked short link
    (mo.channels.links: the serving API's redirect, which records the click), shown here masked at its exact
    length so the SMS's length and parts are what will be sent."""
    from mo.channels.links import SHORT_CODE_LENGTH, LinkError, check_target, short_url
    from mo.config import get_settings

    settings = settings or get_settings()
    try:
        check_target(url, settings)
    except LinkError as exc:
        problems.append((pointer, f"a link variable: {exc} (it is sent as a tracked short link)"))
    return short_url("*" * SHORT_CODE_LENGTH, settings)


def sms_links(payload: Mapping[str, Any]) -> dict[str, str]:
    """The link variables of an SMS payload: variable -> target URL (the template's registered ``links``)."""
    registered = registry()["sms"]["templates"].get(payload.get("template_code") or "") or {}
    values = payload.get("template_param") or {}
    return {name: values[name] for name in registered.get("links") or [] if values.get(name)}


def _wechat(template: Mapping[str, Any], context: RenderContext, out: Rendered) -> None:
    problems = out.problems
    template_id = _string(template, "template_id", problems)
    registered = registry()["wechat"]["templates"].get(template_id) if template_id else None
    if template_id and registered is None:
        problems.append(("/template/template_id", f"WeChat template {template_id!r} is not registered in the "
                                                  "Official Account"))  # fmt: skip
    url = template.get("url")
    if url is not None and (not isinstance(url, str) or not url.startswith("https://")):
        problems.append(("/template/url", "an https:// link"))
    data = template.get("data") or {}
    if not isinstance(data, Mapping):
        problems.append(("/template/data", "an object of template fields"))
        return
    if registered is None:
        return
    rendered: dict[str, dict[str, str]] = {}
    for name, max_length in registered["fields"].items():
        if name not in data:
            problems.append((f"/template/data/{name}", f"missing: template {template_id} needs field {name!r}"))
            continue
        if not isinstance(data[name], str):
            problems.append((f"/template/data/{name}", "a string"))
            continue
        text, found = render_text(data[name], context, f"/template/data/{name}")
        problems.extend(found)
        if len(text) > max_length:
            problems.append((f"/template/data/{name}", f"{len(text)} characters: over WeChat's {max_length}"))
        rendered[name] = {"value": text}
    for name in data:
        if name not in registered["fields"]:
            problems.append((f"/template/data/{name}", f"template {template_id} has no field {name!r}"))
    out.payload = {"template_id": template_id, "data": rendered, "url": url}
    out.preview = {"title": registered["title"], "data": {k: v["value"] for k, v in rendered.items()}, "url": url}


def _push(template: Mapping[str, Any], context: RenderContext, out: Rendered) -> None:
    config = registry()["push"]
    problems = out.problems
    texts: dict[str, str] = {}
    for key, limit in (("title", config["title_max_length"]), ("body", config["body_max_length"])):
        raw = _string(template, key, problems)
        text, found = render_text(raw, context, f"/template/{key}")
        problems.extend(found)
        if len(text) > limit:
            problems.append((f"/template/{key}", f"{len(text)} characters: over the push limit of {limit}"))
        texts[key] = text
    extras = template.get("extras") or {}
    if not isinstance(extras, Mapping) or not all(isinstance(v, str) for v in extras.values()):
        problems.append(("/template/extras", "an object of strings"))
        extras = {}
    out.payload = {"title": texts["title"], "body": texts["body"], "extras": dict(extras)}
    out.preview = {"title": texts["title"], "body": texts["body"], "title_length": len(texts["title"]),
                   "body_length": len(texts["body"])}  # fmt: skip


def _coupon(template: Mapping[str, Any], context: RenderContext, out: Rendered) -> None:
    problems = out.problems
    stock_id = _string(template, "stock_id", problems)
    stock = registry()["coupon"]["stocks"].get(stock_id) if stock_id else None
    if stock_id and stock is None:
        problems.append(("/template/stock_id", f"coupon stock {stock_id!r} is not registered"))
        return
    if stock is None:
        return
    line = context.campaign.get("product_line")
    if stock.get("product_line") and line and stock["product_line"] != line:
        problems.append(("/template/stock_id", f"coupon stock {stock_id} is for {stock['product_line']} products, "
                                               f"the campaign is {line}"))  # fmt: skip
    out.payload = {"stock_id": stock_id, "coupon_value": stock["value"]}
    out.preview = {"stock_id": stock_id, "coupon_value": stock["value"]}


def stored_campaign(row: Any) -> dict[str, Any]:
    """A ``campaigns`` row as the campaign document the checks and renderers take (JSON columns parsed)."""
    import json

    detail = json.loads(row.offer_detail) if row.offer_detail else {}
    return {
        "campaign_code": row.campaign_code,
        "name": row.name,
        "objective": row.objective,
        "product_line": row.product_line,
        "purpose": row.purpose,
        "offer": {"type": row.offer_type, "product_code": row.offer_product_code, **detail},
        "segment_id": row.segment_id,
        "channels": json.loads(row.channels),
        "schedule": json.loads(row.schedule),
        "priority": row.priority,
        "holdout_share": row.holdout_share,
        "ends_at": row.ends_at,
    }


def context_for(
    campaign: Mapping[str, Any],
    product: Mapping[str, Any] | None,
    profile: Mapping[str, Any] | None = None,
    settings: Any = None,
) -> RenderContext:
    """The render context of a campaign document: ``product`` is the offered product's catalogue facts (as
    mo.catalogue.product_facts gives them; None without a product), ``profile`` the customer's
    published profile row (None: widths estimated). The API's checks and previews and the dispatcher's
    rendering at decision time build it here, so every channel states the same facts."""
    offer = campaign["offer"]
    stock = registry()["coupon"]["stocks"].get(offer.get("stock_id") or "")
    ends_at = campaign.get("ends_at")
    return RenderContext(
        product=product,
        offer={
            "type": offer.get("type"),
            "product_code": offer.get("product_code"),
            "stock_id": offer.get("stock_id"),
            "coupon_value": stock["value"] if stock else None,
            "description": offer.get("description"),
        },
        campaign={
            "campaign_code": campaign.get("campaign_code"),
            "name": campaign.get("name"),
            "ends_at": ends_at.date() if isinstance(ends_at, datetime) else ends_at,
            "product_line": campaign.get("product_line"),
        },
        profile=profile,
        settings=settings,
    )


RENDERERS = {"sms": _sms, "wechat": _wechat, "push": _push, "coupon": _coupon}


def render_channel(document: Mapping[str, Any], context: RenderContext) -> Rendered:
    """One channel's template rendered for the context; problems are collected, not raised (a preview shows them
    all); pointers are relative to the channel document."""
    channel = document.get("channel")
    if channel not in RENDERERS:
        problem = ("/channel", f"unknown channel {channel!r}: one of {', '.join(CHANNELS)}")
        return Rendered(str(channel), problems=[problem])
    template = document.get("template")
    out = Rendered(channel)
    if not isinstance(template, Mapping):
        out.problems.append(("/template", "required (an object)"))
        return out
    RENDERERS[channel](template, context, out)
    return out


def check_channels(channels: list[Mapping[str, Any]], context: RenderContext) -> list[tuple[str, str]]:
    """Every problem of a campaign's channels before any customer is chosen (profile widths estimated), with
    pointers ``/<index>/...`` into the list."""
    problems: list[tuple[str, str]] = []
    seen: set[str] = set()
    for index, document in enumerate(channels):
        channel = document.get("channel")
        if channel in seen:
            problems.append((f"/{index}/channel", f"channel {channel} is listed twice"))
        seen.add(str(channel))
        rendered = render_channel(document, context)
        problems.extend((f"/{index}{pointer}", message) for pointer, message in rendered.problems)
    return problems


def render(document: Mapping[str, Any], context: RenderContext) -> Rendered:
    """Render for sending: raises TemplateError naming every problem."""
    rendered = render_channel(document, context)
    if rendered.problems:
        raise TemplateError(rendered.problems)
    return rendered
