{#
    The reference date of every time-relative rule, as a Spark SQL date expression.
    `--vars '{as_of_date: 2025-12-31}'` makes a build reproducible; without it the build date is used.
#}
{% macro as_of_date() -%}
    {%- set value = var('as_of_date', none) -%}
    {%- if value is none or value | string | trim == '' -%}
        current_date()
    {%- else -%}
        date'{{ value | string | trim }}'
    {%- endif -%}
{%- endmacro %}
