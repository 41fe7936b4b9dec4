{#- Data tests of the marketing marts that check many columns in one query (Spark pays per query). -#}

{% test tags_not_null_columns(model, column_names) %}
    select *
    from {{ model }}
    where
        {% for name in column_names -%}
        {{ name }} is null{% if not loop.last %} or {% endif %}
        {% endfor %}
{% endtest %}

{% test tags_unique_combination(model, column_names) %}
    select
        {{ column_names | join(', ') }},
        count(*) as rows_per_key
    from {{ model }}
    group by {{ column_names | join(', ') }}
    having count(*) > 1
{% endtest %}
