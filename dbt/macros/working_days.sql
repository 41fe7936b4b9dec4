{#
    Working days (Monday to Friday) after `start_date` up to and including `end_date`: a claim
    reported on a Friday and reviewed on the Monday took 1 working day; reviewed the same day, 0.
    Public holidays are not modelled. Both arguments are date expressions (timestamps are cast);
    a null argument gives null, an end before the start gives 0.

    Closed form instead of exploding a date sequence per row: count the weekdays from a fixed Monday
    (1970-01-05) up to each date and subtract, so the cost does not grow with the length of the wait.
#}
{% macro weekdays_since_epoch(day) -%}
    (
        floor(datediff(cast({{ day }} as date), date'1970-01-05') / 7) * 5
        + least(pmod(datediff(cast({{ day }} as date), date'1970-01-05'), 7) + 1, 5)
    )
{%- endmacro %}

{% macro working_days_between(start_date, end_date) -%}
    cast(greatest(
        {{ weekdays_since_epoch(end_date) }} - {{ weekdays_since_epoch(start_date) }},
        0
    ) as int)
{%- endmacro %}
