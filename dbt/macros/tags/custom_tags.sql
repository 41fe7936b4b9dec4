{#-
    custom_tags: compile the custom tags of the registry (var tag_registry, from
    mo.tags.registry.registry_vars) into a query over `relation` (the built-in tags, one row per customer)
    returning (customer_id, tag_name, tag_value) for every tag that has a value; customer_profile folds
    them into its custom_tags map<string,string>.

    Each tag's rule is a list of cases [{when: <condition>, value: v}] and an optional else; the first
    case whose condition holds gives the value; a customer the rule gives no value to has no key for the
    tag. Conditions are the attribute conditions of the segment rule language:
    {all: [...]}, {any: [...]}, {not: {...}} and leaves {attr, op, value}, op one of
    eq ne gt gte lt lte in not_in between is_null not_null. A leaf on a null attribute is false
    (except is_null), so `not` reads as the marketer means it.

    A rule may name the columns customer_profile declares (its contract); anything else stops the
    compile with an error naming the tag and the column. Values become SQL literals only after a check
    of their type against the column's declared type (strings escaped, dates and timestamps checked).
-#}
{% macro custom_tags(registry, relation) %}
    {%- set tags = registry if registry is not none else [] -%}
    {#- While dbt parses, the graph is not complete yet: check and compile at execution. -#}
    {%- if tags | length == 0 or not execute -%}
        select
            customer_id,
            cast(null as string) as tag_name,
            cast(null as string) as tag_value
        from {{ relation }}
        where 1 = 0
    {%- else -%}
        {%- set columns = custom_tag_columns() -%}
        {%- set seen = [] -%}
        select
            customer_id,
            tag_name,
            tag_value
        from {{ relation }}
        lateral view inline(array(
        {%- for tag in tags %}
            {%- set name = tag_name_checked(tag) -%}
            {%- if name in seen -%}
                {{ exceptions.raise_compiler_error("custom tag '" ~ name ~ "' is defined twice in var tag_registry") }}
            {%- endif -%}
            {%- do seen.append(name) %}
            named_struct('tag_name', '{{ name }}', 'tag_value', {{ custom_tag_case(tag, columns) }}){% if not loop.last %},{% endif %}
        {%- endfor %}
        )) custom as tag_name, tag_value
        where tag_value is not null
    {%- endif -%}
{% endmacro %}

{#-
    The columns a rule may name: those customer_profile declares (its contract), less the non-tags.
    dbt gives unit tests no graph: there, none (names unchecked, literals typed by the value itself).
-#}
{% macro custom_tag_columns() %}
    {%- if graph.get('nodes') is none -%}
        {{- return(none) -}}
    {%- endif -%}
    {%- set found = [] -%}
    {%- for node in graph.nodes.values() -%}
        {%- if node.resource_type == 'model' and node.name == 'customer_profile' -%}
            {%- do found.append(node) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- if found | length != 1 -%}
        {{ exceptions.raise_compiler_error("custom tags need the model customer_profile and its declared columns") }}
    {%- endif -%}
    {%- set columns = {} -%}
    {%- for name, column in found[0].columns.items() -%}
        {%- if name not in ('custom_tags', 'refreshed_at') -%}
            {%- do columns.update({name: column}) -%}
        {%- endif -%}
    {%- endfor -%}
    {{- return(columns) -}}
{% endmacro %}

{% macro tag_name_checked(tag) %}
    {%- set name = tag.get('name') if tag is mapping else none -%}
    {%- if name is none or not modules.re.match('^[a-z][a-z0-9_]{0,62}$', name | string) -%}
        {{ exceptions.raise_compiler_error("custom tag entry without a valid snake_case name: " ~ tag) }}
    {%- endif -%}
    {{- return(name) -}}
{% endmacro %}

{#- One tag: case when <cond> then '<value>' ... [else '<value>'] end, values as strings. -#}
{% macro custom_tag_case(tag, columns) %}
    {%- set rule = tag.get('rule') or {} -%}
    {%- set cases = rule.get('cases') or [] -%}
    {%- if cases | length == 0 -%}
        {{ exceptions.raise_compiler_error("custom tag '" ~ tag.name ~ "' has no rule cases") }}
    {%- endif -%}
    case
    {%- for case in cases %}
        when {{ tag_condition_sql(tag.name, case.get('when'), columns) }} then {{ tag_value_literal(tag.name, case.get('value')) }}
    {%- endfor %}
    {%- if rule.get('else') is not none %}
        else {{ tag_value_literal(tag.name, rule.get('else')) }}
    {%- endif %}
    end
{%- endmacro %}

{#- A case's value as a string literal (the map holds strings): true/false, numbers, text. -#}
{% macro tag_value_literal(tag_name, value) %}
    {%- if value is none -%}
        {{- return('cast(null as string)') -}}
    {%- elif value is boolean -%}
        {{- return("'true'" if value else "'false'") -}}
    {%- elif value is number or value is string -%}
        {{- return(tag_string_literal(value)) -}}
    {%- else -%}
        {{ exceptions.raise_compiler_error("custom tag '" ~ tag_name ~ "': a case value must be a string, number or boolean, got " ~ value) }}
    {%- endif -%}
{% endmacro %}

{% macro tag_condition_sql(tag_name, node, columns) %}
    {%- if node is not mapping -%}
        {{ exceptions.raise_compiler_error("custom tag '" ~ tag_name ~ "': a condition must be an object, got " ~ node) }}
    {%- elif 'all' in node or 'any' in node -%}
        {%- set key = 'all' if 'all' in node else 'any' -%}
        {%- set parts = [] -%}
        {%- for child in node[key] -%}
            {%- do parts.append(tag_condition_sql(tag_name, child, columns)) -%}
        {%- endfor -%}
        {%- if parts | length == 0 -%}
            {{ exceptions.raise_compiler_error("custom tag '" ~ tag_name ~ "': '" ~ key ~ "' needs at least one condition") }}
        {%- endif -%}
        {{- return('(' ~ parts | join(' and ' if key == 'all' else ' or ') ~ ')') -}}
    {%- elif 'not' in node -%}
        {{- return('(not ' ~ tag_condition_sql(tag_name, node['not'], columns) ~ ')') -}}
    {%- else -%}
        {{- return(tag_leaf_sql(tag_name, node, columns)) -}}
    {%- endif -%}
{% endmacro %}

{% macro tag_leaf_sql(tag_name, leaf, columns) %}
    {%- set attr = leaf.get('attr') -%}
    {%- set op = leaf.get('op') -%}
    {%- if attr is none or not modules.re.match('^[a-z][a-z0-9_]{0,62}$', attr | string)
        or (columns is not none and attr not in columns) -%}
        {{ exceptions.raise_compiler_error(
            "custom tag '" ~ tag_name ~ "' refers to column '" ~ attr ~ "', which customer_profile does not declare"
        ) }}
    {%- endif -%}
    {%- set data_type = (columns[attr].get('data_type') or 'string') | lower if columns is not none else none -%}
    {%- if op == 'is_null' -%}
        {{- return('(' ~ attr ~ ' is null)') -}}
    {%- elif op == 'not_null' -%}
        {{- return('(' ~ attr ~ ' is not null)') -}}
    {%- endif -%}
    {%- set comparisons = {'eq': '=', 'ne': '<>', 'gt': '>', 'gte': '>=', 'lt': '<', 'lte': '<='} -%}
    {%- set value = leaf.get('value') -%}
    {%- if op in comparisons -%}
        {%- set expr = attr ~ ' ' ~ comparisons[op] ~ ' ' ~ tag_attr_literal(tag_name, attr, data_type, value) -%}
    {%- elif op in ('in', 'not_in') -%}
        {%- if value is string or value is not iterable or value | length == 0 -%}
            {{ exceptions.raise_compiler_error("custom tag '" ~ tag_name ~ "': " ~ op ~ " on '" ~ attr ~ "' needs a non-empty list") }}
        {%- endif -%}
        {%- set items = [] -%}
        {%- for v in value -%}
            {%- do items.append(tag_attr_literal(tag_name, attr, data_type, v)) -%}
        {%- endfor -%}
        {%- set expr = attr ~ (' in (' if op == 'in' else ' not in (') ~ items | join(', ') ~ ')' -%}
    {%- elif op == 'between' -%}
        {%- if value is string or value is not iterable or value | length != 2 -%}
            {{ exceptions.raise_compiler_error("custom tag '" ~ tag_name ~ "': between on '" ~ attr ~ "' needs [low, high]") }}
        {%- endif -%}
        {%- set expr = attr ~ ' between ' ~ tag_attr_literal(tag_name, attr, data_type, value[0])
            ~ ' and ' ~ tag_attr_literal(tag_name, attr, data_type, value[1]) -%}
    {%- else -%}
        {{ exceptions.raise_compiler_error("custom tag '" ~ tag_name ~ "': unknown operator '" ~ op ~ "' on '" ~ attr ~ "'") }}
    {%- endif -%}
    {{- return('coalesce(' ~ expr ~ ', false)') -}}
{% endmacro %}

{#- A value compared with column `attr`, as a literal of the column's declared type. -#}
{% macro tag_attr_literal(tag_name, attr, data_type, value) %}
    {%- if data_type is none -%}
        {%- set data_type = 'boolean' if value is boolean else ('double' if value is number else 'string') -%}
    {%- endif -%}
    {%- set fail = "custom tag '" ~ tag_name ~ "': value " ~ value ~ " does not fit column '" ~ attr ~ "' (" ~ data_type ~ ")" -%}
    {%- if value is none -%}
        {{ exceptions.raise_compiler_error(fail ~ "; use is_null / not_null") }}
    {%- elif data_type == 'boolean' -%}
        {%- if value is not boolean -%}{{ exceptions.raise_compiler_error(fail) }}{%- endif -%}
        {{- return('true' if value else 'false') -}}
    {%- elif data_type in ('int', 'integer', 'bigint', 'smallint', 'tinyint', 'double', 'float')
        or data_type.startswith('decimal') -%}
        {%- if value is boolean or value is not number -%}{{ exceptions.raise_compiler_error(fail) }}{%- endif -%}
        {{- return(value | string) -}}
    {%- elif data_type == 'date' -%}
        {%- if value is not string or not modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}$', value) -%}
            {{ exceptions.raise_compiler_error(fail) }}
        {%- endif -%}
        {{- return("date'" ~ value ~ "'") -}}
    {%- elif data_type == 'timestamp' -%}
        {%- if value is not string
            or not modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}([ T][0-9]{2}:[0-9]{2}(:[0-9]{2}(\\.[0-9]{1,6})?)?)?$', value) -%}
            {{ exceptions.raise_compiler_error(fail) }}
        {%- endif -%}
        {{- return("timestamp'" ~ value ~ "'") -}}
    {%- else -%}
        {%- if value is not string and value is not number -%}{{ exceptions.raise_compiler_error(fail) }}{%- endif -%}
        {{- return(tag_string_literal(value)) -}}
    {%- endif -%}
{% endmacro %}
