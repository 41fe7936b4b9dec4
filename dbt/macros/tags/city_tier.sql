{#-
    Commercial city tier of a city name (as customers.city holds it, e.g. '杭州市').

    tier1: the four first-tier cities; new_tier1: the fifteen "new first-tier" cities of the annual
    Yicai ranking; tier2: provincial capitals and large prefecture cities; anything else tier3_below.
    The lists follow the tiering of the synthetic world's city table (tests/dbt/test_tags_models.py keeps
    them equal to mo/generator/reference.py); an insurer edits them here when the ranking moves.
-#}

{% macro tag_city_tier_lists() %}
    {{ return({
        'tier1': ['北京市', '上海市', '广州市', '深圳市'],
        'new_tier1': [
            '天津市', '沈阳市', '南京市', '苏州市', '杭州市', '合肥市', '青岛市', '郑州市',
            '武汉市', '长沙市', '佛山市', '东莞市', '重庆市', '成都市', '西安市',
        ],
        'tier2': [
            '石家庄市', '保定市', '廊坊市', '太原市', '大连市', '长春市', '哈尔滨市', '无锡市',
            '徐州市', '常州市', '南通市', '宁波市', '温州市', '嘉兴市', '绍兴市', '金华市',
            '台州市', '福州市', '厦门市', '泉州市', '南昌市', '济南市', '烟台市', '潍坊市',
            '珠海市', '惠州市', '中山市', '南宁市', '贵阳市', '昆明市', '兰州市',
        ],
    }) }}
{% endmacro %}

{% macro tag_city_tier(city) %}
    {%- set lists = tag_city_tier_lists() -%}
    case
        {%- for tier in ['tier1', 'new_tier1', 'tier2'] %}
        when {{ city }} in ({% for name in lists[tier] %}'{{ name }}'{% if not loop.last %}, {% endif %}{% endfor %}) then '{{ tier }}'
        {%- endfor %}
        else 'tier3_below'
    end
{%- endmacro %}
