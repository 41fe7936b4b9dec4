{#
    Layers live in fixed schemas of the lake catalog (staging, intermediate, marts), not in
    "<target schema>_<custom schema>" as dbt's default would name them: other jobs (segments,
    publishing, dashboards) read `<catalog>.marts.<model>` by name.
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema | trim }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
