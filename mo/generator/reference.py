"""Reference data the synthetic insurer world draws from: regions, names, phones, plates, vehicles, products.

The figures are shaped on public statistics so downstream marts look like a real Chinese book: surname
frequencies from the national household register, province and city weights by population with a tier
mix (first-tier cities hold about a fifth of an insurer's retail customers), GB/T 2260 region codes for
18-digit resident ID numbers (GB 11643 check digit), plate prefixes per city, and a product shelf that
spans auto, property, accident, health and life. Life and investment-type health products carry the
sales dual recording (双录) duty of the 2017 rules on traceable sales (可回溯管理), with the QC sample
ratio the recording platform lets each product define.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from itertools import accumulate
from operator import mul


@dataclass(frozen=True)
class City:
    name: str
    province: str
    code: str  # first four digits of the GB/T 2260 code (province + prefecture)
    plate: str  # licence plate prefix, e.g. 粤B
    tier: int  # 1 first tier, 2 new first tier, 3 second tier, 4 third tier and below


# (province, two-digit code, population weight, capital) -- 31 mainland provinces.
PROVINCES: list[tuple[str, str, float, str]] = [
    ("北京市", "11", 2.19, "北京市"),
    ("天津市", "12", 1.36, "天津市"),
    ("河北省", "13", 7.42, "石家庄市"),
    ("山西省", "14", 3.47, "太原市"),
    ("内蒙古自治区", "15", 2.40, "呼和浩特市"),
    ("辽宁省", "21", 4.20, "沈阳市"),
    ("吉林省", "22", 2.35, "长春市"),
    ("黑龙江省", "23", 3.10, "哈尔滨市"),
    ("上海市", "31", 2.49, "上海市"),
    ("江苏省", "32", 8.52, "南京市"),
    ("浙江省", "33", 6.63, "杭州市"),
    ("安徽省", "34", 6.12, "合肥市"),
    ("福建省", "35", 4.19, "福州市"),
    ("江西省", "36", 4.51, "南昌市"),
    ("山东省", "37", 10.16, "济南市"),
    ("河南省", "41", 9.82, "郑州市"),
    ("湖北省", "42", 5.84, "武汉市"),
    ("湖南省", "43", 6.57, "长沙市"),
    ("广东省", "44", 12.66, "广州市"),
    ("广西壮族自治区", "45", 5.05, "南宁市"),
    ("海南省", "46", 1.04, "海口市"),
    ("重庆市", "50", 3.19, "重庆市"),
    ("四川省", "51", 8.37, "成都市"),
    ("贵州省", "52", 3.86, "贵阳市"),
    ("云南省", "53", 4.67, "昆明市"),
    ("西藏自治区", "54", 0.37, "拉萨市"),
    ("陕西省", "61", 3.95, "西安市"),
    ("甘肃省", "62", 2.47, "兰州市"),
    ("青海省", "63", 0.59, "西宁市"),
    ("宁夏回族自治区", "64", 0.73, "银川市"),
    ("新疆维吾尔自治区", "65", 2.59, "乌鲁木齐市"),
]
PROVINCE_CODE = {name: code for name, code, _, _ in PROVINCES}
PROVINCE_SHORT = {
    "北京市": "北京", "天津市": "天津", "河北省": "河北", "山西省": "山西", "内蒙古自治区": "内蒙古",
    "辽宁省": "辽宁", "吉林省": "吉林", "黑龙江省": "黑龙江", "上海市": "上海", "江苏省": "江苏",
    "浙江省": "浙江", "安徽省": "安徽", "福建省": "福建", "江西省": "江西", "山东省": "山东",
    "河南省": "河南", "湖北省": "湖北", "湖南省": "湖南", "广东省": "广东", "广西壮族自治区": "广西",
    "海南省": "海南", "重庆市": "重庆", "四川省": "四川", "贵州省": "贵州", "云南省": "云南",
    "西藏自治区": "西藏", "陕西省": "陕西", "甘肃省": "甘肃", "青海省": "青海", "宁夏回族自治区": "宁夏",
    "新疆维吾尔自治区": "新疆",
}  # fmt: skip

# (city, province, prefecture code, plate prefix, tier)
_CITY_ROWS: list[tuple[str, str, str, str, int]] = [
    ("北京市", "北京市", "1101", "京A", 1),
    ("天津市", "天津市", "1201", "津A", 2),
    ("石家庄市", "河北省", "1301", "冀A", 3),
    ("唐山市", "河北省", "1302", "冀B", 4),
    ("秦皇岛市", "河北省", "1303", "冀C", 4),
    ("邯郸市", "河北省", "1304", "冀D", 4),
    ("保定市", "河北省", "1306", "冀F", 3),
    ("沧州市", "河北省", "1309", "冀J", 4),
    ("廊坊市", "河北省", "1310", "冀R", 3),
    ("太原市", "山西省", "1401", "晋A", 3),
    ("大同市", "山西省", "1402", "晋B", 4),
    ("运城市", "山西省", "1408", "晋M", 4),
    ("呼和浩特市", "内蒙古自治区", "1501", "蒙A", 4),
    ("包头市", "内蒙古自治区", "1502", "蒙B", 4),
    ("鄂尔多斯市", "内蒙古自治区", "1506", "蒙K", 4),
    ("沈阳市", "辽宁省", "2101", "辽A", 2),
    ("大连市", "辽宁省", "2102", "辽B", 3),
    ("鞍山市", "辽宁省", "2103", "辽C", 4),
    ("长春市", "吉林省", "2201", "吉A", 3),
    ("吉林市", "吉林省", "2202", "吉B", 4),
    ("哈尔滨市", "黑龙江省", "2301", "黑A", 3),
    ("齐齐哈尔市", "黑龙江省", "2302", "黑B", 4),
    ("大庆市", "黑龙江省", "2306", "黑E", 4),
    ("上海市", "上海市", "3101", "沪A", 1),
    ("南京市", "江苏省", "3201", "苏A", 2),
    ("无锡市", "江苏省", "3202", "苏B", 3),
    ("徐州市", "江苏省", "3203", "苏C", 3),
    ("常州市", "江苏省", "3204", "苏D", 3),
    ("苏州市", "江苏省", "3205", "苏E", 2),
    ("南通市", "江苏省", "3206", "苏F", 3),
    ("扬州市", "江苏省", "3210", "苏K", 4),
    ("杭州市", "浙江省", "3301", "浙A", 2),
    ("宁波市", "浙江省", "3302", "浙B", 3),
    ("温州市", "浙江省", "3303", "浙C", 3),
    ("嘉兴市", "浙江省", "3304", "浙F", 3),
    ("绍兴市", "浙江省", "3306", "浙D", 3),
    ("金华市", "浙江省", "3307", "浙G", 3),
    ("台州市", "浙江省", "3310", "浙J", 3),
    ("合肥市", "安徽省", "3401", "皖A", 2),
    ("芜湖市", "安徽省", "3402", "皖B", 4),
    ("蚌埠市", "安徽省", "3403", "皖C", 4),
    ("阜阳市", "安徽省", "3412", "皖K", 4),
    ("福州市", "福建省", "3501", "闽A", 3),
    ("厦门市", "福建省", "3502", "闽D", 3),
    ("泉州市", "福建省", "3505", "闽C", 3),
    ("漳州市", "福建省", "3506", "闽E", 4),
    ("南昌市", "江西省", "3601", "赣A", 3),
    ("九江市", "江西省", "3604", "赣G", 4),
    ("赣州市", "江西省", "3607", "赣B", 4),
    ("济南市", "山东省", "3701", "鲁A", 3),
    ("青岛市", "山东省", "3702", "鲁B", 2),
    ("淄博市", "山东省", "3703", "鲁C", 4),
    ("烟台市", "山东省", "3706", "鲁F", 3),
    ("潍坊市", "山东省", "3707", "鲁G", 3),
    ("济宁市", "山东省", "3708", "鲁H", 4),
    ("临沂市", "山东省", "3713", "鲁Q", 4),
    ("郑州市", "河南省", "4101", "豫A", 2),
    ("开封市", "河南省", "4102", "豫B", 4),
    ("洛阳市", "河南省", "4103", "豫C", 4),
    ("新乡市", "河南省", "4107", "豫G", 4),
    ("南阳市", "河南省", "4113", "豫R", 4),
    ("武汉市", "湖北省", "4201", "鄂A", 2),
    ("黄石市", "湖北省", "4202", "鄂B", 4),
    ("宜昌市", "湖北省", "4205", "鄂E", 4),
    ("襄阳市", "湖北省", "4206", "鄂F", 4),
    ("长沙市", "湖南省", "4301", "湘A", 2),
    ("株洲市", "湖南省", "4302", "湘B", 4),
    ("湘潭市", "湖南省", "4303", "湘C", 4),
    ("衡阳市", "湖南省", "4304", "湘D", 4),
    ("岳阳市", "湖南省", "4306", "湘F", 4),
    ("常德市", "湖南省", "4307", "湘J", 4),
    ("广州市", "广东省", "4401", "粤A", 1),
    ("深圳市", "广东省", "4403", "粤B", 1),
    ("珠海市", "广东省", "4404", "粤C", 3),
    ("汕头市", "广东省", "4405", "粤D", 4),
    ("佛山市", "广东省", "4406", "粤E", 2),
    ("江门市", "广东省", "4407", "粤J", 4),
    ("湛江市", "广东省", "4408", "粤G", 4),
    ("惠州市", "广东省", "4413", "粤L", 3),
    ("东莞市", "广东省", "4419", "粤S", 2),
    ("中山市", "广东省", "4420", "粤T", 3),
    ("南宁市", "广西壮族自治区", "4501", "桂A", 3),
    ("柳州市", "广西壮族自治区", "4502", "桂B", 4),
    ("桂林市", "广西壮族自治区", "4503", "桂C", 4),
    ("海口市", "海南省", "4601", "琼A", 4),
    ("三亚市", "海南省", "4602", "琼B", 4),
    ("重庆市", "重庆市", "5001", "渝A", 2),
    ("成都市", "四川省", "5101", "川A", 2),
    ("绵阳市", "四川省", "5107", "川B", 4),
    ("德阳市", "四川省", "5106", "川F", 4),
    ("南充市", "四川省", "5113", "川R", 4),
    ("宜宾市", "四川省", "5115", "川Q", 4),
    ("贵阳市", "贵州省", "5201", "贵A", 3),
    ("遵义市", "贵州省", "5203", "贵C", 4),
    ("昆明市", "云南省", "5301", "云A", 3),
    ("曲靖市", "云南省", "5303", "云D", 4),
    ("大理白族自治州", "云南省", "5329", "云L", 4),
    ("拉萨市", "西藏自治区", "5401", "藏A", 4),
    ("西安市", "陕西省", "6101", "陕A", 2),
    ("宝鸡市", "陕西省", "6103", "陕C", 4),
    ("咸阳市", "陕西省", "6104", "陕D", 4),
    ("榆林市", "陕西省", "6108", "陕K", 4),
    ("兰州市", "甘肃省", "6201", "甘A", 3),
    ("天水市", "甘肃省", "6205", "甘E", 4),
    ("西宁市", "青海省", "6301", "青A", 4),
    ("银川市", "宁夏回族自治区", "6401", "宁A", 4),
    ("乌鲁木齐市", "新疆维吾尔自治区", "6501", "新A", 4),
    ("克拉玛依市", "新疆维吾尔自治区", "6502", "新J", 4),
]
CITIES: list[City] = [City(*row) for row in _CITY_ROWS]

# Customers concentrate in big cities well beyond their population share (income, car ownership).
_TIER_PULL = {1: 3.2, 2: 1.7, 3: 1.0, 4: 0.55}


def _city_weights() -> list[float]:
    province_weight = {name: w for name, _, w, _ in PROVINCES}
    per_province: dict[str, float] = {}
    for c in CITIES:
        per_province[c.province] = per_province.get(c.province, 0.0) + _TIER_PULL[c.tier]
    return [
        province_weight[c.province] * _TIER_PULL[c.tier] / per_province[c.province] * _tier_boost(c) for c in CITIES
    ]


def _tier_boost(city: City) -> float:
    # Provincial weights spread over the listed cities understate the metropolises; lift them again.
    return {1: 2.6, 2: 1.5, 3: 1.0, 4: 0.8}[city.tier]


CITY_CUM_WEIGHTS: list[float] = list(accumulate(_city_weights()))
CITIES_BY_PROVINCE: dict[str, list[int]] = {}
for _i, _c in enumerate(CITIES):
    CITIES_BY_PROVINCE.setdefault(_c.province, []).append(_i)

# --- people ----------------------------------------------------------------------------------------

# Share (per cent) of the most common surnames; the rest of the mass goes to the rarer ones below.
_SURNAMES = (
    "王7.12 李7.00 张6.13 刘5.38 陈4.53 杨3.08 黄2.20 赵2.00 吴1.90 周1.90 徐1.60 孙1.50 马1.50 朱1.30 胡1.30 "
    "郭1.20 何1.20 高1.10 林1.10 罗1.10 郑1.00 梁1.00 谢0.80 宋0.80 唐0.80 许0.70 韩0.70 冯0.70 邓0.70 曹0.70 "
    "彭0.60 曾0.60 肖0.60 田0.60 董0.50 袁0.50 潘0.50 于0.50 蒋0.50 蔡0.50 余0.50 杜0.50 叶0.40 程0.40 苏0.40 "
    "魏0.40 吕0.40 丁0.40 任0.40 沈0.40 姚0.40 卢0.40 姜0.30 崔0.30 钟0.30 谭0.30 陆0.30 汪0.30 范0.30 金0.30 "
    "石0.30 廖0.30 贾0.30 夏0.30 韦0.30 付0.30 方0.30 白0.30 邹0.30 孟0.30 熊0.30 秦0.30 邱0.30 江0.30 尹0.30 "
    "薛0.20 闫0.20 段0.20 雷0.20 侯0.20 龙0.20 史0.20 陶0.20 黎0.20 贺0.20 顾0.20 毛0.20 郝0.20 龚0.20 邵0.20 "
    "万0.20 钱0.20 严0.20 覃0.20 武0.20 戴0.20 莫0.20 孔0.20 向0.20 汤0.20"
)
_RARE_SURNAMES = (
    "常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞左柳甘祝包宁尚符舒阮柯纪梅童凌毕单季"
    "裴霍涂成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲房滕屈饶解牟艾尤阳时穆农司卓古吉缪简车项连芦麦褚娄窦"
    "戚岑景党宫费卜冷晏席卫米柏宗瞿桂全佟应臧闵苟邬边卞姬师和仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩明佘池查麻"
    "苑迟邝"
)
_COMPOUND_SURNAMES = ["欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "尉迟", "令狐", "慕容", "司徒"]


def _surname_table() -> tuple[list[str], list[float]]:
    names, weights = [], []
    for item in _SURNAMES.split():
        names.append(item[0])
        weights.append(float(item[1:]))
    rest = max(100.0 - sum(weights), 0.0)
    rare_share = rest * 0.985 / len(_RARE_SURNAMES)
    for ch in _RARE_SURNAMES:
        names.append(ch)
        weights.append(rare_share)
    for compound in _COMPOUND_SURNAMES:
        names.append(compound)
        weights.append(rest * 0.015 / len(_COMPOUND_SURNAMES))
    return names, list(accumulate(weights))


SURNAMES, SURNAME_CUM_WEIGHTS = _surname_table()

# Given-name characters by gender and generation: fashions in names moved a lot between the 1960s and 2000s.
GIVEN_MALE_OLDER = "国建军伟强明华平志勇刚文斌海兵林辉永春生峰涛德清荣宏新成忠庆福利红光"
GIVEN_MALE_YOUNGER = "浩宇轩子杰博文睿泽晨俊鹏涛磊阳帆凯旭昊然航宸铭嘉霖皓天佑逸恒思远一诚哲"
GIVEN_FEMALE_OLDER = "秀英华兰芳玉珍丽桂敏静霞红梅琴云凤艳玲燕萍莉娟淑彩春素雪丹慧"
GIVEN_FEMALE_YOUNGER = "婷怡欣佳琪雨涵诗梦瑶悦可馨紫萱桐思语晨颖彤妍雯倩洁琳婧璐蕾菲心若"

# Mobile number prefixes (China Mobile, Unicom, Telecom, with the newer 19x ranges).
PHONE_PREFIXES = (
    "134 135 136 137 138 139 147 150 151 152 157 158 159 172 178 182 183 184 187 188 195 198 "
    "130 131 132 145 155 156 166 175 176 185 186 196 "
    "133 149 153 173 177 180 181 189 190 191 193 199"
).split()

ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK = "10X98765432"


def id_check_digit(first17: str) -> str:
    """GB 11643-1999 check digit (ISO 7064 MOD 11-2) of the first 17 digits."""
    return ID_CHECK[sum(map(mul, map(int, first17), ID_WEIGHTS)) % 11]


def make_id_number(region6: str, birth: date, sequence: int, gender: str) -> str:
    """An 18-digit resident ID number: region, birth date, sequence (odd for men), check digit."""
    seq = sequence % 500 * 2 + (1 if gender == "M" else 0)
    first17 = f"{region6}{birth:%Y%m%d}{seq:03d}"
    return first17 + id_check_digit(first17)


def id_number_is_valid(id_number: str) -> bool:
    return len(id_number) == 18 and id_number[:17].isdigit() and id_check_digit(id_number[:17]) == id_number[17]


# --- vehicles and homes ----------------------------------------------------------------------------

# (model, new price in CNY, new-energy?)
VEHICLE_MODELS: list[tuple[str, int, bool]] = [
    ("比亚迪秦PLUS DM-i", 110_000, True),
    ("比亚迪宋PLUS DM-i", 160_000, True),
    ("比亚迪海豚", 110_000, True),
    ("比亚迪汉EV", 220_000, True),
    ("特斯拉Model Y", 260_000, True),
    ("特斯拉Model 3", 240_000, True),
    ("五菱宏光MINIEV", 40_000, True),
    ("理想L7", 320_000, True),
    ("蔚来ES6", 340_000, True),
    ("小鹏P7", 220_000, True),
    ("广汽埃安AION S", 140_000, True),
    ("问界M7", 260_000, True),
    ("大众朗逸", 120_000, False),
    ("大众速腾", 150_000, False),
    ("大众帕萨特", 200_000, False),
    ("丰田卡罗拉", 120_000, False),
    ("丰田凯美瑞", 190_000, False),
    ("本田雅阁", 180_000, False),
    ("本田思域", 130_000, False),
    ("日产轩逸", 100_000, False),
    ("别克英朗", 90_000, False),
    ("吉利帝豪", 75_000, False),
    ("吉利星越L", 150_000, False),
    ("长安CS75 PLUS", 120_000, False),
    ("哈弗H6", 110_000, False),
    ("奥迪A4L", 300_000, False),
    ("宝马3系", 320_000, False),
    ("奔驰C级", 340_000, False),
    ("红旗H5", 170_000, False),
    ("五菱宏光", 50_000, False),
]
VEHICLE_CUM_WEIGHTS = list(
    accumulate([5, 5, 4, 2, 4, 3, 4, 1.5, 1, 1.2, 1.5, 1.2, 7, 5, 3, 5, 3, 3, 3, 6, 4, 4, 3, 4, 5, 2, 2, 2, 1.5, 3])
)
PLATE_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"  # no I or O on plates
PLATE_CHARS = "0123456789" * 4 + PLATE_LETTERS

ROADS = (
    "人民路 建设路 解放路 中山路 和平路 新华路 胜利路 幸福路 长江路 黄河路 "
    "朝阳路 文化路 学府路 滨江大道 世纪大道 光明路 迎宾路 青年路 团结路 振兴路"
).split()
COMMUNITIES = (
    "阳光花园 翠苑小区 金色家园 锦绣华庭 碧水湾 万科城 保利花园 绿地新都会 "
    "恒大名都 龙湖春江郦城 华润城 融创壹号院 世纪新城 时代广场公寓 滨江花园"
).split()

# --- products ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProductSpec:
    code: str
    name: str
    line: str  # auto | property | accident | health | life
    risk_level: str
    dual_recording: bool
    base_premium: float
    term_months: int
    qc_sample_ratio: float
    sum_insured: float  # typical sum insured (auto: taken from the vehicle value instead)
    payment_modes: tuple[str, ...]
    status: str = "on_sale"


PRODUCTS: list[ProductSpec] = [
    # Motor: compulsory third-party (交强险) and the commercial covers, all annual.
    ProductSpec("AU-CTPL", "机动车交通事故责任强制保险", "auto", "R1", False, 950, 12, 0, 200_000, ("annual",)),
    ProductSpec("AU-COMP", "机动车商业保险综合套餐", "auto", "R1", False, 3_600, 12, 0, 0, ("annual",)),
    ProductSpec("AU-TPL", "机动车第三者责任保险", "auto", "R1", False, 1_300, 12, 0, 2_000_000, ("annual",)),
    ProductSpec("AU-NEV", "新能源汽车商业保险", "auto", "R1", False, 4_800, 12, 0, 0, ("annual",)),
    ProductSpec("AU-PAX", "车上人员责任保险", "auto", "R1", False, 260, 12, 0, 100_000, ("annual",)),
    ProductSpec("AU-OLD", "机动车损失保险(旧条款)", "auto", "R1", False, 2_900, 12, 0, 0, ("annual",), "withdrawn"),
    # Property.
    ProductSpec("PR-HOME", "家庭财产综合保险", "property", "R1", False, 380, 12, 0, 500_000, ("annual",)),
    ProductSpec("PR-HOUSE", "住宅综合保险", "property", "R1", False, 620, 12, 0, 1_500_000, ("annual",)),
    ProductSpec("PR-ACCT", "个人账户资金安全保险", "property", "R1", False, 36, 12, 0, 50_000, ("annual", "monthly")),
    ProductSpec("PR-PET", "宠物责任保险", "property", "R2", False, 120, 12, 0, 100_000, ("annual",)),
    ProductSpec("PR-PHONE", "手机碎屏保障", "property", "R1", False, 99, 12, 0, 8_000, ("single",)),
    ProductSpec("PR-DISA", "家庭巨灾保险", "property", "R2", False, 260, 12, 0, 300_000, ("annual",)),
    # Accident.
    ProductSpec("AC-GEN", "综合意外伤害保险", "accident", "R1", False, 198, 12, 0, 500_000, ("annual",)),
    ProductSpec("AC-TRAF", "交通工具意外伤害保险", "accident", "R1", False, 99, 12, 0, 1_000_000, ("annual",)),
    ProductSpec("AC-TRVL", "境内外旅行意外保险", "accident", "R1", False, 60, 12, 0, 300_000, ("single",)),
    ProductSpec("AC-SPORT", "运动意外保险", "accident", "R1", False, 49, 12, 0, 100_000, ("single", "annual")),
    ProductSpec("AC-ELDER", "老年人意外伤害保险", "accident", "R2", False, 299, 12, 0, 200_000, ("annual",)),
    ProductSpec("AC-DRIVE", "驾乘人员意外伤害保险", "accident", "R1", False, 150, 12, 0, 400_000, ("annual",)),
    ProductSpec("AC-STUD", "学生平安意外保险", "accident", "R1", False, 80, 12, 0, 100_000, ("annual",)),
    # Health: short-term medical without recording; long-term, savings-type covers with it.
    ProductSpec("HE-MED", "百万医疗保险", "health", "R2", False, 420, 12, 0, 3_000_000, ("annual", "monthly")),
    ProductSpec("HE-MEDP", "中高端医疗保险", "health", "R3", False, 3_800, 12, 0, 8_000_000, ("annual",)),
    ProductSpec("HE-CANC", "防癌医疗保险", "health", "R2", False, 260, 12, 0, 1_000_000, ("annual",)),
    ProductSpec("HE-HOSP", "住院津贴保险", "health", "R1", False, 180, 12, 0, 50_000, ("annual", "monthly")),
    ProductSpec("HE-CI", "终身重大疾病保险(返还型)", "health", "R3", True, 6_800, 600, 0.15, 300_000, ("annual",)),
    ProductSpec("HE-CIS", "两全重大疾病保险", "health", "R3", True, 5_200, 360, 0.12, 200_000, ("annual", "monthly")),
    ProductSpec("HE-LTC", "长期护理保险", "health", "R3", True, 4_200, 240, 0.10, 200_000, ("annual",)),
    ProductSpec("HE-TAX", "税优健康保险", "health", "R2", False, 2_400, 12, 0, 200_000, ("annual", "monthly")),
    # Life: every product here sold under the dual recording rules.
    ProductSpec("LI-TERM", "定期寿险", "life", "R2", True, 1_500, 240, 0.08, 1_000_000, ("annual",)),
    ProductSpec("LI-WHOLE", "终身寿险", "life", "R3", True, 12_000, 1200, 0.15, 800_000, ("annual",)),
    ProductSpec("LI-INCR", "增额终身寿险", "life", "R3", True, 30_000, 1200, 0.20, 300_000, ("annual", "single")),
    ProductSpec("LI-ANN", "年金保险", "life", "R3", True, 20_000, 240, 0.20, 400_000, ("annual", "single")),
    ProductSpec("LI-PENS", "个人养老年金保险", "life", "R2", True, 12_000, 360, 0.10, 300_000, ("annual", "monthly")),
    ProductSpec("LI-ENDW", "分红型两全保险", "life", "R4", True, 10_000, 120, 0.25, 200_000, ("annual", "quarterly")),
    ProductSpec("LI-UL", "万能型终身寿险", "life", "R4", True, 50_000, 1200, 0.25, 500_000, ("single", "annual")),
    ProductSpec("LI-ILP", "投资连结保险", "life", "R5", True, 100_000, 120, 0.30, 100_000, ("single",)),
]
PRODUCT_ID = {p.code: i + 1 for i, p in enumerate(PRODUCTS)}
PRODUCTS_BY_LINE: dict[str, list[int]] = {}
for _i, _p in enumerate(PRODUCTS):
    if _p.status == "on_sale":
        PRODUCTS_BY_LINE.setdefault(_p.line, []).append(_i)

# Within a line, how popular each on-sale product is (same order as PRODUCTS_BY_LINE).
PRODUCT_POPULARITY: dict[str, list[float]] = {
    "auto": [4, 5, 1.2, 1.5, 0.6],
    "property": [4, 2, 1.5, 0.6, 1, 0.5],
    "accident": [4, 2, 1.2, 1, 1, 1.5, 0.8],
    "health": [6, 1, 1.5, 1, 1.6, 0.9, 0.5, 0.6],
    "life": [2, 1.2, 1.6, 1.2, 1, 1, 0.6, 0.4],
}
PRODUCT_CUM_WEIGHTS = {line: list(accumulate(w)) for line, w in PRODUCT_POPULARITY.items()}
for _line, _ws in PRODUCT_POPULARITY.items():
    assert len(_ws) == len(PRODUCTS_BY_LINE[_line]), _line

LINES = ("auto", "property", "accident", "health", "life")
# Which lines customers of each age band hold (relative weights): cars and health cover in mid-life,
# accident cover for the young and the old, savings and annuities from the forties on.
LINE_MIX_BY_AGE: list[tuple[int, list[float]]] = [
    (30, [3.0, 0.8, 3.0, 2.4, 1.1]),
    (45, [3.8, 1.6, 1.8, 2.8, 2.3]),
    (60, [3.2, 2.0, 1.4, 2.8, 2.6]),
    (200, [1.2, 1.6, 2.6, 2.4, 1.8]),
]
LINE_CUM_BY_AGE = [(limit, list(accumulate(w))) for limit, w in LINE_MIX_BY_AGE]

# Claims per policy-year by line, and incident types (relative weights).
CLAIM_RATE = {"auto": 0.3, "property": 0.06, "accident": 0.09, "health": 0.2, "life": 0.012}
INCIDENT_TYPES: dict[str, list[tuple[str, float]]] = {
    "auto": [("collision", 70), ("glass", 10), ("theft", 2), ("natural_disaster", 6), ("water_damage", 6),
             ("fire", 1), ("injury", 3), ("other", 2)],
    "property": [("water_damage", 40), ("fire", 10), ("theft", 25), ("natural_disaster", 15), ("other", 10)],
    "accident": [("injury", 80), ("hospitalisation", 16), ("death", 2), ("other", 2)],
    "health": [("illness", 45), ("hospitalisation", 53), ("other", 2)],
    "life": [("death", 55), ("illness", 40), ("other", 5)],
}  # fmt: skip
# Median claimed amount (CNY) by incident type; amounts are log-normal around it.
CLAIM_MEDIAN = {
    "collision": 4_500, "glass": 1_800, "theft": 60_000, "natural_disaster": 12_000, "water_damage": 8_000,
    "fire": 30_000, "injury": 6_000, "illness": 35_000, "hospitalisation": 9_000, "death": 0, "other": 3_000,
}  # fmt: skip

RECORDING_REJECT_REASONS = [
    "风险提示环节缺失,需重新录制",
    "投保人未完整出示身份证件",
    "话术节点未逐一确认",
    "录像画面不清晰,无法辨认投保人",
    "录音中断,关键条款告知不完整",
    "客户未亲自签署投保单",
    "犹豫期告知内容遗漏",
]
RECORDING_PASS_COMMENTS = [None, None, None, "审核通过", "话术完整,审核通过"]

CUSTOMER_CHANNELS = ["agent", "app", "wechat", "bancassurance", "telesales", "web"]
CUSTOMER_CHANNEL_CUM = list(accumulate([44, 16, 16, 10, 8, 6]))
ONLINE_CHANNELS = frozenset({"app", "wechat", "web"})

CONSENT_CHANNELS = ["app_push", "sms", "wechat", "email", "phone"]
COMPLAINT_CHANNELS = ["hotline", "app", "wechat", "branch", "regulator"]
COMPLAINT_CHANNEL_CUM = list(accumulate([45, 15, 15, 15, 10]))
COMPLAINT_CATEGORIES = ["claim", "sales", "service", "billing", "product"]
COMPLAINT_CATEGORY_CUM = list(accumulate([35, 25, 20, 10, 10]))

# Behaviour-event vocabulary (app pages, WeChat menus and articles, forms, campaigns).
APP_PAGES = ["home", "product_detail", "quote", "policy_list", "policy_detail", "claim_progress", "claim_report",
             "coupon_center", "renewal", "member_center", "car_service", "health_service"]  # fmt: skip
WECHAT_SCENES = ["qrcode_branch", "qrcode_agent", "search", "article_share", "menu_share", "ad_moments", "mini_program"]
WECHAT_MENUS = ["我的保单", "理赔服务", "续保", "车生活", "健康服务", "在线客服", None]
FORMS = ["quote_auto", "quote_home", "quote_accident", "health_survey", "claim_report", "renewal_confirm",
         "contact_update", "risk_assessment"]  # fmt: skip
FORM_LINE = {"quote_auto": "auto", "quote_home": "property", "quote_accident": "accident", "health_survey": "health",
             "risk_assessment": "life"}  # fmt: skip
CAMPAIGNS = ["CMP-RENEW-Q1", "CMP-NEWCAR", "CMP-HEALTH-CHECK", "CMP-SPRING", "CMP-WECHAT-FOLLOW", None]
COUPON_VALUES = [10.0, 20.0, 30.0, 50.0, 100.0, 200.0]
