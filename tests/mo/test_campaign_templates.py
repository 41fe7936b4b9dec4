"""Channel templates: strict placeholders, facts from the catalogue and the profile, the providers' registrations
and limits (SMS signature, length and parts as Chinese providers count them, WeChat fields, push, coupons)."""

from __future__ import annotations

import copy
import math
import random

import pytest

from mo.campaigns import templates
from mo.campaigns.templates import (
    SMS_PARAM,
    RenderContext,
    TemplateError,
    check_channels,
    placeholder_problems,
    render,
    render_channel,
    render_text,
    sms_length,
)

PRODUCT = {"product_code": "AU-COMP", "name": "机动车综合险", "line": "auto", "base_premium": 1200.0,
           "sum_insured": None, "payment_modes": ["annual"], "coverage_region": "中国大陆"}  # fmt: skip
PROFILE = {"customer_id": 7, "name_masked": "张*", "next_renewal_date": "2026-12-30", "age": 31, "has_auto": True}
CONTEXT = RenderContext(product=PRODUCT, offer={"type": "product"}, campaign={"name": "x", "product_line": "auto"},
                        profile=PROFILE)  # fmt: skip


def sms(**params: str) -> dict:
    values = {"name": "{{profile.name_masked}}", "product": "{{product.name}}",
              "renewal_date": "{{profile.next_renewal_date}}", "link": "https://m.example-insurer.cn/r"}  # fmt: skip
    values.update(params)
    return {
        "channel": "sms",
        "template": {"sign_name": "中安保险", "template_code": "SMS_RENEWAL_01", "params": values},
    }


def pointers(rendered) -> list[str]:  # type: ignore[no-untyped-def]
    return [p for p, _ in rendered.problems]


def test_sms_is_rendered_from_the_catalogue_and_the_profile() -> None:
    out = render(sms(), CONTEXT)
    # the customer reads the tracked short link (the API's redirect), counted at its exact length; the payload
    # keeps the target, which the dispatcher turns into that message's short link
    link = "http://127.0.0.1:8000/v1/t/********"
    assert len(link) == 35 == templates.registry()["sms"]["param_max_length"]
    text = f"【中安保险】尊敬的张*，您的机动车综合险将于2026-12-30到期，续保请点击{link}，回T退订"
    assert out.preview == {"text": text, "length": len(text), "parts": 2}
    params = {
        "name": "张*",
        "product": "机动车综合险",
        "renewal_date": "2026-12-30",
        "link": "https://m.example-insurer.cn/r",
    }
    assert out.payload == {"sign_name": "中安保险", "template_code": "SMS_RENEWAL_01", "template_param": params}


@pytest.mark.parametrize(
    ("length", "parts"), [(0, 0), (1, 1), (70, 1), (71, 2), (134, 2), (135, 3), (201, 3), (202, 4), (536, 8)]
)
def test_sms_length_counts_every_character_as_providers_do(length: int, parts: int) -> None:
    assert sms_length("保" * length) == (length, parts)
    assert sms_length("a" * length) == (length, parts)  # Latin letters count the same, not by bytes


def test_sms_length_random_texts() -> None:
    rng = random.Random(7)
    alphabet = "保险续约abcXYZ0123 ，。！【】https://"
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 700)))
        length, parts = sms_length(text)
        assert length == len(text)
        assert parts == (0 if not text else 1 if len(text) <= 70 else math.ceil(len(text) / 67))


def test_unregistered_signature_and_template_are_named() -> None:
    bad = sms()
    bad["template"]["sign_name"] = "某某保险"
    assert pointers(render_channel(bad, CONTEXT)) == ["/template/sign_name"]
    bad["template"]["template_code"] = "SMS_NOPE"
    assert pointers(render_channel(bad, CONTEXT)) == ["/template/sign_name", "/template/template_code"]
    with pytest.raises(TemplateError, match="signature '某某保险' is not registered"):
        render(bad, CONTEXT)


def test_missing_and_extra_variables_are_named() -> None:
    bad = sms(extra="x")
    del bad["template"]["params"]["link"]
    assert pointers(render_channel(bad, CONTEXT)) == ["/template/params/link", "/template/params/extra"]


def test_an_sms_over_the_providers_limits_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    assert pointers(render_channel(sms(name="x" * 36), CONTEXT)) == ["/template/params/name"]
    registry = copy.deepcopy(templates.registry())
    registry["sms"]["param_max_length"] = 1000
    monkeypatch.setattr(templates, "registry", lambda: registry)
    ok = render_channel(sms(name="x" * 400), CONTEXT)
    assert ok.problems == [] and ok.preview["parts"] == math.ceil(ok.preview["length"] / 67)
    too_long = render_channel(sms(name="x" * 600), CONTEXT)
    assert pointers(too_long) == ["/template/params"]
    assert "over the provider's 8" in too_long.problems[0][1]


def test_an_sms_link_is_an_allowed_target_sent_as_a_short_link_whatever_its_length(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    long_target = "https://m.example-insurer.cn/renewal?campaign=december-2026&ref=sms&utm_source=sms"
    out = render_channel(sms(link=long_target), CONTEXT)
    assert out.problems == [] and out.payload["template_param"]["link"] == long_target
    assert "http://127.0.0.1:8000/v1/t/********" in out.preview["text"] and long_target not in out.preview["text"]
    assert templates.sms_links(out.payload) == {"link": long_target}
    off_list = render_channel(sms(link="https://evil.example/x"), CONTEXT)
    assert pointers(off_list) == ["/template/params/link"] and "not on the allow-list" in off_list.problems[0][1]
    assert pointers(render_channel(sms(link="请致电95500"), CONTEXT)) == ["/template/params/link"]
    # an API address too long for a 35-character variable is named at approval, not found at sending
    monkeypatch.setenv("MO_CHANNEL_LINK_BASE_URL", "https://marketing-api.example-insurer.cn")
    long_base = render_channel(sms(), CONTEXT)
    assert pointers(long_base) == ["/template/params/link"]
    assert "characters the tracked short link is over the provider's 35" in long_base.problems[0][1]


def test_placeholders_are_strict_and_never_run_code() -> None:
    for text in ["{{ product.name.__class__ }}", "{{product}}", "{{ 7*7 }}", "{{product.name", "}}",
                 "{{ profile.name_masked | upper }}", "{{__import__('os').system('x')}}"]:  # fmt: skip
        problems = placeholder_problems(text, "/t")
        assert problems and "malformed placeholder" in problems[-1][1], text
    assert "namespace 'os'" in placeholder_problems("{{os.environ}}", "/t")[0][1]
    assert "profile has no field 'phone_token'" in placeholder_problems("{{profile.phone_token}}", "/t")[0][1]
    assert "product has no field 'price'" in placeholder_problems("{{ product.price }}", "/t")[0][1]
    # text without placeholders is returned as written, whatever it holds
    rng = random.Random(3)
    alphabet = "{}%$#!()._'\" abc保险"
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 40)))
        rendered, problems = render_text(text, CONTEXT, "/t")
        if "{{" not in text and "}}" not in text:
            assert (rendered, problems) == (text, [])
        else:
            assert problems or rendered != text or "{{" not in text


def test_values_are_formatted_and_missing_ones_named() -> None:
    text, problems = render_text("{{product.base_premium}}元 {{product.payment_modes}} {{profile.has_auto}}",
                                 CONTEXT, "/t")  # fmt: skip
    assert (text, problems) == ("1200元 annual 是", [])
    _, problems = render_text("{{product.sum_insured}}", CONTEXT, "/t")
    assert problems == [("/t", "{{product.sum_insured}} has no value")]
    no_product = RenderContext(product=None, offer={}, campaign={})
    assert "offers no product" in render_text("{{product.name}}", no_product, "/t")[1][0][1]


def test_without_a_customer_profile_widths_are_estimated() -> None:
    context = RenderContext(product=PRODUCT, offer={}, campaign={})
    out = render_channel(sms(), context)
    assert out.problems == [] and "尊敬的********，" in out.preview["text"]


def test_wechat_fields_push_limits_and_coupon_stocks() -> None:
    data = {"thing1": "{{product.name}}", "time2": "{{profile.next_renewal_date}}", "thing4": "x"}
    wechat = {"channel": "wechat", "template": {"template_id": "TM_RENEWAL_REMINDER", "url": "http://x", "data": data}}
    out = render_channel(wechat, CONTEXT)
    assert pointers(out) == ["/template/url", "/template/data/thing3", "/template/data/thing4"]
    wechat["template"]["data"] = {"thing1": "保" * 21, "time2": "x", "thing3": "y"}
    wechat["template"]["url"] = "https://m.example.cn"
    assert pointers(render_channel(wechat, CONTEXT)) == ["/template/data/thing1"]
    unknown = {"channel": "wechat", "template": {"template_id": "TM_NOPE", "data": {}}}
    assert pointers(render_channel(unknown, CONTEXT)) == ["/template/template_id"]

    push = {"channel": "push", "template": {"title": "{{product.name}}", "body": "b" * 101}}
    out = render_channel(push, CONTEXT)
    assert pointers(out) == ["/template/body"] and out.preview["title"] == "机动车综合险"
    assert pointers(render_channel({"channel": "push", "template": {"title": ""}}, CONTEXT)) == [
        "/template/title", "/template/body"]  # fmt: skip

    coupon = {"channel": "coupon", "template": {"stock_id": "STOCK_HEALTH_100"}}
    assert "for health products" in render_channel(coupon, CONTEXT).problems[0][1]
    ok = render(({"channel": "coupon", "template": {"stock_id": "STOCK_AUTO_50"}}), CONTEXT)
    assert ok.payload == {"stock_id": "STOCK_AUTO_50", "coupon_value": 50}


def test_channel_lists_are_checked_with_pointers_into_the_list() -> None:
    problems = check_channels([sms(), sms(name="{{x.y}}"), {"channel": "fax", "template": {}}], CONTEXT)
    assert [p for p, _ in problems] == ["/1/channel", "/1/template/params/name", "/2/channel"]


def test_the_registry_is_consistent() -> None:
    registry = templates.registry()
    for code, template in registry["sms"]["templates"].items():
        assert SMS_PARAM.findall(template["text"]) == template["params"], code
    for template_id, template in registry["wechat"]["templates"].items():
        assert template["fields"] and all(isinstance(n, int) and n > 0 for n in template["fields"].values()), (
            template_id
        )
    assert registry["sms"]["signatures"] and registry["coupon"]["stocks"]
