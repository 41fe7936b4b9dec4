{#-
    Customer value tier from premium (in-force total), frequency (in-force policy count) and claims ratio
    (lifetime paid claims / lifetime premium). A customer takes the first tier whose three thresholds
    they meet; anyone else is bronze. Changing a threshold here changes the registry's description
    (schemas/tags/registry.yaml, customer_tier) and the unit tests on int_customer_value.
-#}
{% macro tag_customer_tier_thresholds() %}
    {{ return([
        {'tier': 'platinum', 'min_premium': 20000, 'min_policies': 3, 'max_claims_ratio': 0.5},
        {'tier': 'gold', 'min_premium': 8000, 'min_policies': 2, 'max_claims_ratio': 0.8},
        {'tier': 'silver', 'min_premium': 2000, 'min_policies': 1, 'max_claims_ratio': 1.0},
    ]) }}
{% endmacro %}

{% macro tag_customer_tier(total_premium, policy_count, claims_ratio) %}
    case
        {%- for t in tag_customer_tier_thresholds() %}
        when {{ total_premium }} >= {{ t.min_premium }}
            and {{ policy_count }} >= {{ t.min_policies }}
            and {{ claims_ratio }} <= {{ t.max_claims_ratio }}
            then '{{ t.tier }}'
        {%- endfor %}
        else 'bronze'
    end
{%- endmacro %}
