{#
    A Chinese province's ISO 3166-2 code as Superset's Country Map (country "china") keys its regions: the
    letter codes of the 2017 revision (CN-BJ, CN-GD, ...), and the numeric codes its map still uses for Taiwan,
    Hong Kong and Macao. The one mapping of province names (as the source writes them, full names such as
    广东省) to map codes; anything else gives null (not drawn).
#}
{% macro china_province_iso_code(column) -%}
    {%- set codes = {
        '北京市': 'CN-BJ', '天津市': 'CN-TJ', '河北省': 'CN-HE', '山西省': 'CN-SX', '内蒙古自治区': 'CN-NM',
        '辽宁省': 'CN-LN', '吉林省': 'CN-JL', '黑龙江省': 'CN-HL', '上海市': 'CN-SH', '江苏省': 'CN-JS',
        '浙江省': 'CN-ZJ', '安徽省': 'CN-AH', '福建省': 'CN-FJ', '江西省': 'CN-JX', '山东省': 'CN-SD',
        '河南省': 'CN-HA', '湖北省': 'CN-HB', '湖南省': 'CN-HN', '广东省': 'CN-GD', '广西壮族自治区': 'CN-GX',
        '海南省': 'CN-HI', '重庆市': 'CN-CQ', '四川省': 'CN-SC', '贵州省': 'CN-GZ', '云南省': 'CN-YN',
        '西藏自治区': 'CN-XZ', '陕西省': 'CN-SN', '甘肃省': 'CN-GS', '青海省': 'CN-QH', '宁夏回族自治区': 'CN-NX',
        '新疆维吾尔自治区': 'CN-XJ', '台湾省': 'CN-71', '香港特别行政区': 'CN-91', '澳门特别行政区': 'CN-92',
    } -%}
    case {{ column }}
        {%- for name, code in codes.items() %}
        when '{{ name }}' then '{{ code }}'
        {%- endfor %}
    end
{%- endmacro %}
