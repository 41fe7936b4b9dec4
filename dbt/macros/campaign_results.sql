{#
    The campaign results marts' shared definitions, the same as mo/campaigns/results.py (a test compares them):
    - campaign_reasons_before_holdout(): reasons a touch stops at before the holdout is drawn (neither group);
    - campaign_suppress_reasons(): the known reasons of a final suppress, one column each in
      mart_campaign_results (any other reason lands in suppressed_other);
    - wilson_low / wilson_high: the Wilson score interval of x successes in n (doubles, n > 0), written in the
      same order of operations as results.wilson so both give the same doubles.
#}
{% macro campaign_reasons_before_holdout() -%}
    ('erased', 'no_consent', 'consent_withdrawn', 'consent_unknown', 'open_claim', 'open_complaint',
     'risk_above_rating', 'campaign_ended')
{%- endmacro %}

{% macro campaign_suppress_reasons() -%}
    {{ return(['erased', 'no_consent', 'consent_withdrawn', 'consent_unknown', 'open_claim', 'open_complaint',
               'risk_above_rating', 'holdout', 'cap_7d', 'cap_30d', 'cap_channel_7d', 'customer_frequency',
               'campaign_ended', 'no_channel']) }}
{%- endmacro %}

{% macro z_95() -%}1.959963984540054D{%- endmacro %}

{% macro wilson_centre(x, n) -%}
    (({{ x }} / {{ n }}) + {{ z_95() }} * {{ z_95() }} / (2 * {{ n }})) / (1 + {{ z_95() }} * {{ z_95() }} / {{ n }})
{%- endmacro %}

{% macro wilson_half(x, n) -%}
    {{ z_95() }} * sqrt(({{ x }} / {{ n }}) * (1 - ({{ x }} / {{ n }})) / {{ n }}
        + {{ z_95() }} * {{ z_95() }} / (4 * {{ n }} * {{ n }})) / (1 + {{ z_95() }} * {{ z_95() }} / {{ n }})
{%- endmacro %}

{% macro wilson_low(x, n) -%}
    greatest(0D, {{ wilson_centre(x, n) }} - {{ wilson_half(x, n) }})
{%- endmacro %}

{% macro wilson_high(x, n) -%}
    least(1D, {{ wilson_centre(x, n) }} + {{ wilson_half(x, n) }})
{%- endmacro %}
