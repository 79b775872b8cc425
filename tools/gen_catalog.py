"""One-off: build configs/catalog.yaml from shared/domain catalog.md + catalog_fields.csv."""
import csv, re, yaml
from collections import OrderedDict
D = "/work/shared/domain/"
rows = list(csv.DictReader(open(D + "catalog_fields.csv", encoding="utf-8")))
md = open(D + "catalog.md", encoding="utf-8").read().splitlines()

departments = [
 ("D01","舟山市市场监督管理局","Market Supervision Administration (MSA)","csv"),
 ("D02","国家税务总局舟山市税务局","Zhoushan Tax Bureau (STA)","parquet"),
 ("D03","舟山市中级人民法院及各基层法院(含宁波海事法院舟山法庭)","People's Courts (incl. Ningbo Maritime Court, Zhoushan tribunal)","jsonl"),
 ("D04","舟山市住房公积金管理中心","Housing Provident Fund (HPF) Management Center","csv"),
 ("D05","舟山市人力资源和社会保障局","Human Resources & Social Security Bureau (HRSS)","parquet"),
 ("D06","舟山市经济和信息化局","Economy & Information Technology Bureau","csv"),
 ("D07","舟山海关","Zhoushan Customs","parquet"),
 ("D08","舟山市生态环境局","Ecology & Environment Bureau","csv"),
 ("D09","舟山市公共信用信息中心(信用舟山)","Public Credit Information Center (Credit Zhoushan)","jsonl"),
 ("D10","舟山市自然资源和规划局","Natural Resources & Planning Bureau","csv"),
 ("D11","舟山市知识产权局(国家知识产权局数据接口)","Intellectual Property Office (via CNIPA interface)","jsonl"),
 ("D12","中国人民银行舟山市分行 / 征信中心动产融资统一登记公示系统","PBoC Zhoushan Branch / Credit Reference Center movable-collateral registry","jsonl"),
 ("D13","国网舟山供电公司","State Grid Zhoushan Power Supply Co.","parquet"),
 ("D14","舟山市水务集团","Zhoushan Water Group","csv"),
 ("D15","舟山市燃气公司","Zhoushan Gas Co.","csv"),
 ("D16","舟山海事局 / 市港航和口岸管理局(含渔船登记)","Maritime Safety Administration & Port Authority (incl. fishing-vessel register)","csv"),
 ("D17","舟山市商务局(自贸试验区油品管理)","Commerce Bureau (FTZ oil-products administration)","csv"),
 ("D18","舟山市应急管理局","Emergency Management Bureau","csv"),
 ("X01","第三方互联网数据服务商","Third-party internet data vendors","jsonl"),
]
# library: (id, dept, name_zh, sub_item, selector)
libs = [
 ("L01","D01","市场主体登记库","ent_registration",None),
 ("L02","D01","股东及出资信息库","shareholders",None),
 ("L03","D01","主要人员库","key_personnel",None),
 ("L04","D01","变更登记库","registration_changes",None),
 ("L05","D01","企业年报库","annual_report",None),
 ("L06","D01","企业年报对外担保库","external_guarantees",None),
 ("L07","D01","经营异常名录及严重违法失信名单库","msa_credit_lists",None),
 ("L08","D01","股权出质登记库","equity_pledges",None),
 ("L09","D02","纳税信用评价库","tax_profile",None),
 ("L10","D02","税收征管申报库","tax_monthly",None),
 ("L11","D02","欠税公告及重大税收违法案件库","tax_announcements",None),
 ("L12","D03","裁判文书库","litigation_cases",{"field":"judgment_date","not_null":True}),
 ("L13","D03","立案信息及开庭公告库","litigation_cases",None),
 ("L14","D03","终结本次执行案件库","enforcement_cases",{"field":"status","equals":["terminated_no_assets"]}),
 ("L15","D03","被执行人库","enforcement_cases",None),
 ("L16","D03","失信被执行人库","dishonest_debtors",None),
 ("L17","D03","限制消费人员库","consumption_restrictions",None),
 ("L18","D03","司法协助股权冻结库","judicial_freezes",None),
 ("L19","D04","住房公积金缴存库","hpf_monthly",None),
 ("L20","D05","社保参保登记库","social_insurance_monthly",{"field":"new_enrollments","greater_than":0}),
 ("L21","D05","社保费征缴库","social_insurance_monthly",None),
 ("L22","D05","劳动人事争议仲裁库","labor_disputes",None),
 ("L23","D06","亩均效益评价库","mu_efficiency",None),
 ("L24","D07","海关进出口统计及企业信用库","customs_monthly",None),
 ("L25","D08","环境信用评价库","env_credit",None),
 ("L26","D09","信用修复库","admin_penalties",{"field":"credit_repair_date","not_null":True}),
 ("L27","D09","行政处罚双公示库","admin_penalties",None),
 ("L28","D09","公共信用评价库","public_credit_eval",None),
 ("L29","D10","海域使用权登记库","real_property_rights",{"field":"right_type","equals":["sea_area_use"]}),
 ("L30","D10","不动产登记库","real_property_rights",None),
 ("L31","D11","知识产权库","ip_assets",None),
 ("L32","D12","动产融资统一登记库","movable_collateral_registry",None),
 ("L33","D13","电力用户用电库","electricity_monthly",None),
 ("L34","D14","供水用户库","water_monthly",None),
 ("L35","D15","燃气用户库","gas_monthly",None),
 ("L36","D16","船舶登记及海事监管库","vessels",None),
 ("L37","D17","油品经营资质库","oil_trade_license",None),
 ("L38","D18","安全生产监管库","safety_production",None),
 ("L39","X01","第三方舆情接口","news_sentiment",None),
 ("L40","X01","第三方招聘接口","recruitment",None),
]
# grain, lag_days [min,max], availability anchor field
meta = {
 "ent_registration":("snapshot",1,3,None),"shareholders":("list",1,3,"valid_from"),
 "key_personnel":("list",1,3,"valid_from"),"registration_changes":("event_list",1,3,"change_date"),
 "annual_report":("annual_snapshot",0,0,"submit_date"),"external_guarantees":("list",0,0,None),
 "msa_credit_lists":("event_list",0,3,"list_date"),"equity_pledges":("event_list",1,3,"registration_date"),
 "tax_profile":("annual_snapshot",0,0,None),"tax_monthly":("monthly_series",15,25,"period_month"),
 "tax_announcements":("event_list",0,7,"publish_date"),"litigation_cases":("event_list",7,90,"filing_date"),
 "enforcement_cases":("event_list",7,30,"filing_date"),"dishonest_debtors":("event_list",0,0,"publish_date"),
 "consumption_restrictions":("event_list",7,14,"issue_date"),"judicial_freezes":("event_list",3,10,"freeze_start_date"),
 "hpf_monthly":("monthly_series",10,20,"period_month"),"social_insurance_monthly":("monthly_series",15,25,"period_month"),
 "labor_disputes":("event_list",20,40,"case_date"),"mu_efficiency":("annual_snapshot",120,180,None),
 "customs_monthly":("monthly_series",10,20,"period_month"),"env_credit":("annual_snapshot",110,130,None),
 "admin_penalties":("event_list",1,10,"decision_date"),"public_credit_eval":("monthly_snapshot",3,7,"eval_date"),
 "real_property_rights":("list",1,5,"acquisition_date"),"ip_assets":("monthly_snapshot",25,35,None),
 "movable_collateral_registry":("event_list",1,3,"registration_date"),"electricity_monthly":("monthly_series",10,20,"period_month"),
 "water_monthly":("monthly_series",10,20,"period_month"),"gas_monthly":("monthly_series",10,20,"period_month"),
 "vessels":("list",25,35,None),"oil_trade_license":("list",1,7,"issue_date"),
 "safety_production":("monthly_snapshot",10,20,None),"news_sentiment":("event_list",0,1,"publish_date"),
 "recruitment":("monthly_series",3,7,"period_month"),
}
# summary table rows
summ = {}
for line in md:
    m = re.match(r"\| (S\d\d) \| `(\w+)` \| ([^|]+) \| (D\d\d|X01) \| ([^|]+) \| ([^|]+) \| ([^|]+) \| ([^|]+) \| ([^|]+) \| (\d+) \|", line)
    if m:
        summ[m.group(2)] = dict(id=m.group(1), name_zh=m.group(3).strip(), frequency=m.group(6).strip(), lag_text=m.group(7).strip(),
                                key=[k.strip(" `") for k in m.group(8).split("+")], coverage=m.group(9).strip(), n=int(m.group(10)))
titles = {}
for line in md:
    m = re.match(r"### (S\d\d) `(\w+)` — (.+?) / (.+)$", line)
    if m: titles[m.group(2)] = m.group(4).strip()
assert len(summ)==35, len(summ)
CJK = re.compile(r"[\u3400-\u9fff][\u3400-\u9fff0-9/、·]*")
NEG_OK = {"owners_equity","total_profit","net_profit"}
def frange(f, dtype, unit):
    u = unit
    if u in ("fraction 0-1","fraction","score 0-1"): return 0.0, 1.0
    if u=="points 0-100": return 0.0, 100.0
    if u=="points 0-1000": return 0.0, 1000.0
    if u=="year": return 1985, 2035
    if dtype in ("int","float") and f not in NEG_OK: return 0, None
    return None, None
out_sub = []
by_sub = OrderedDict()
for r in rows: by_sub.setdefault(r["sub_item"], []).append(r)
for code, rs in by_sub.items():
    s = summ[code]; g, lo, hi, anchor = meta[code]
    fields = []
    for r in rs:
        dt = r["dtype"]; allowed=None; length=None
        if dt.startswith("category"):
            allowed = [a.strip() for a in dt[dt.index("{")+1:dt.rindex("}")].split(",")]; base="category"
        elif dt.startswith("string("):
            base="string"; length=int(dt[7:-1])
        else: base=dt
        rd = r["risk_direction"].strip(); rdir = rd.split(" ")[0]
        mn, mx = frange(r["field"], base, r["unit"])
        zh = "；".join(dict.fromkeys(CJK.findall(r["meaning"]))) or None
        fd = OrderedDict(name=r["field"], dtype=base)
        if length: fd["length"]=length
        if allowed: fd["allowed"]=allowed
        fd["unit"]=r["unit"]
        if mn is not None: fd["min"]=mn
        if mx is not None: fd["max"]=mx
        fd["risk_direction"]=rdir
        if rd!=rdir: fd["risk_note"]=rd[len(rdir):].strip(" ()")
        fd["meaning_en"]=r["meaning"]; 
        if zh: fd["meaning_zh"]=zh
        fd["distribution"]=r["range_distribution"]
        fields.append(fd)
    assert len(fields)==s["n"], code
    si = OrderedDict(id=s["id"], code=code, name_zh=s["name_zh"], name_en=titles[code], department=rs[0]["department"],
        libraries=[l[0] for l in libs if l[3]==code], grain=g, grain_note=rs[0]["grain"], frequency=s["frequency"],
        lag_days=[lo,hi], lag_note=s["lag_text"], availability_anchor=anchor, key=s["key"], coverage=s["coverage"], fields=fields)
    out_sub.append(si)
doc = OrderedDict(version=1,
  departments=[OrderedDict(id=a,name_zh=b,name_en=c,delivery_format=d) for a,b,c,d in departments],
  libraries=[OrderedDict([("id",a),("department",b),("name_zh",c),("sub_item",d)] + ([("selector",e)] if e else [])) for a,b,c,d,e in libs],
  sub_items=out_sub)
def rep(dumper, data): return dumper.represent_mapping("tag:yaml.org,2002:map", data.items())
yaml.add_representer(OrderedDict, rep)
hdr = "# The catalog: 35 source sub-items, 290 fields. Single source of truth for the simulator, ingestion,\n# Feast views, data docs and reason codes. Derived from shared/domain/catalog.md (catalog_fields.csv).\n"
open("/work/main/configs/catalog.yaml","w",encoding="utf-8").write(hdr + yaml.dump(doc, allow_unicode=True, sort_keys=False, width=200))
print("fields", sum(len(s["fields"]) for s in out_sub))
