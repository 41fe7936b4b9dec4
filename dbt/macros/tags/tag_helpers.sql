{#- Small helpers of the tag models: the reference date and SQL literals that cannot break out of quotes. -#}

{#-
    The reference date of every time-relative tag rule (ages, days to renewal, 30-day and 12-month
    windows): var as_of_date ('YYYY-MM-DD'), today when unset. Checked, since it is pasted into SQL.
-#}
{% macro tag_as_of_date() %}
    {%- set value = var('as_of_date', none) -%}
    {%- if value is none or (value | string | trim) in ('', 'None', 'none') -%}
        current_date()
    {%- else -%}
        {%- set text = value | string | trim -%}
        {%- if not modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}$', text) -%}
            {{ exceptions.raise_compiler_error("var as_of_date must be a date 'YYYY-MM-DD', got '" ~ text ~ "'") }}
        {%- endif -%}
        date'{{ text }}'
    {%- endif -%}
{% endmacro %}

{#- A string literal; the value can hold quotes and backslashes. -#}
{% macro tag_string_literal(value) %}
    {{- return(adapter.dispatch('tag_string_literal')(value)) -}}
{% endmacro %}

{% macro default__tag_string_literal(value) %}
    {{- return("'" ~ (value | string).replace("'", "''") ~ "'") -}}
{% endmacro %}

{#- Spark reads backslash escapes in literals and joins adjacent literals ('a''b' is 'ab'), so escape both. -#}
{% macro spark__tag_string_literal(value) %}
    {{- return("'" ~ (value | string).replace('\\', '\\\\').replace("'", "\\'") ~ "'") -}}
{% endmacro %}

{#- Whole years from date `start` to date `end` (a birthday or anniversary on `end` counts). -#}
{% macro tag_whole_years(start, end) %}
    (year({{ end }}) - year({{ start }})
        - case when date_format({{ end }}, 'MMdd') < date_format({{ start }}, 'MMdd') then 1 else 0 end)
{%- endmacro %}
