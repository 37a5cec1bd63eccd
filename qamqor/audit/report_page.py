# ruff: noqa: E501  (an HTML template)
"""The Jinja2 template of DIR/audit/report.html (kept in Python: no package data to ship)."""

PAGE = r"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{ d.title }} — {{ d.run_date }}</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 0 auto; max-width: 1280px; padding: 1em 2em;
       color: #222; }
h1 { margin-bottom: .2em; } h2 { border-bottom: 2px solid #ddd; margin-top: 2em; }
.meta { color: #666; }
.cards { display: flex; gap: 1em; flex-wrap: wrap; margin: 1em 0; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: .6em 1em; min-width: 12em; }
.card b { display: block; font-size: 1.6em; }
.grid { display: grid; grid-template-columns: 1fr 1fr; gap: 1em; }
table { border-collapse: collapse; margin: .5em 0 1em; }
th, td { border-bottom: 1px solid #eee; padding: 3px 8px; text-align: right; vertical-align: top; }
th { background: #f6f6f6; position: sticky; top: 0; }
td.l, th.l { text-align: left; }
tr.detail td { background: #fafafa; text-align: left; }
.filters { display: flex; gap: .6em; flex-wrap: wrap; align-items: center; margin: .5em 0; }
.high { color: #b03a2e; font-weight: bold; } .medium { color: #b9770e; } .low { color: #555; }
.note { background: #fff8e1; padding: .5em 1em; border-left: 4px solid #f0b400; }
button.trace { font-size: 12px; }
</style>
<script>{{ plotly_js|safe }}</script>
</head>
<body>
<h1>{{ d.title }}</h1>
<p class="meta">Run date <b id="run-date">{{ d.run_date }}</b> · nation {{ d.nation }} ·
generated {{ d.generated_at }} · sources: DIR/audit/findings.parquet, ingested/payments,
cards, levels, entitlements{% if t %}, truth/persons (targeting only){% endif %}</p>

<div class="cards">
  <div class="card">findings<b id="total-findings">{{ "{:,}".format(d.findings.total) }}</b></div>
  <div class="card">money at risk, KZT a year<b>{{ d.findings.amount_at_risk|kzt }}</b></div>
  {% if t %}
  <div class="card">ASP inclusion error<b>{{ t.national.measures.asp.inclusion_error|pct }}</b></div>
  <div class="card">ASP exclusion error<b>{{ t.national.measures.asp.exclusion_error|pct }}</b></div>
  <div class="card">spending to the poorest 20 %
    <b>{{ t.national.measures.system.share_to_poorest_20|pct }}</b></div>
  <div class="card">people poor (true income)<b>{{ t.national.poverty_rate|pct }}</b></div>
  {% endif %}
</div>

<h2>Findings</h2>
<div class="grid">
  <div class="chart">{{ charts.findings_by_type|safe }}</div>
  <div class="chart">{{ charts.money_by_type|safe }}</div>
  <div class="chart">{{ charts.findings_by_region|safe }}</div>
  <div class="chart">{{ charts.money_by_region|safe }}</div>
</div>
<table id="types">
<tr><th class="l">type</th><th class="l">rule</th><th class="l">data read</th><th>findings</th>
<th>at risk, KZT a year</th></tr>
{% for r in d.findings.by_type %}
<tr><td class="l">{{ r.key }}</td><td class="l">{{ d.rules.get(r.key, {}).get("rule", "docs/audit.md") }}</td>
<td class="l">{{ d.rules.get(r.key, {}).get("data", "") }}</td>
<td>{{ "{:,}".format(r.findings) }}</td><td>{{ r.amount_at_risk|kzt }}</td></tr>
{% endfor %}
</table>

<h2>Targeting and fairness against true need</h2>
{% if not t %}
<p class="note" id="no-targeting">{{ d.targeting_note }}</p>
{% else %}
<p class="note">An evaluation: <b>poor</b> = {{ t.poor }} ({{ t.poverty_line.method }};
{{ t.poverty_line.median_source }}). System = {{ t.system }}. Payments of {{ t.months_paid }}
month(s), annualised. Definitions: docs/audit.md.</p>
<p>{{ "{:,}".format(t.national.families) }} families, {{ "{:,}".format(t.national.people) }}
people; poor: {{ "{:,}".format(t.national.poor_families) }} families,
{{ "{:,}".format(t.national.poor_people) }} people ({{ t.national.poverty_rate|pct }}).</p>
<table id="targeting">
<tr><th class="l">measure</th>{% for k, label, _ in figures %}<th>{{ label }}</th>{% endfor %}</tr>
{% for m, f in t.national.measures.items() %}
<tr id="t-{{ m }}"><td class="l">{{ m }}</td>
{% for k, _, kind in figures %}<td data-figure="{{ k }}">{{ f.get(k)|fmt(kind) }}</td>{% endfor %}</tr>
{% endfor %}
</table>
<div class="chart">{{ charts.curves|safe }}</div>
<div class="grid">
  <div class="chart">{{ charts.errors|safe }}</div>
  <div class="chart">{{ charts.coverage_by_region|safe }}</div>
</div>
{% macro group_table(id, rows, label) %}
<table id="{{ id }}">
<tr><th class="l">{{ label }}</th><th>families</th><th>people poor</th><th>poor families</th>
<th>coverage of the poor (system)</th><th>exclusion error (system)</th>
<th>inclusion error (system)</th><th>ASP coverage of the poor</th><th>ASP inclusion error</th>
<th>spending to the poorest 20 %</th><th>mean benefit, KZT a year</th></tr>
{% for key, g in rows %}{% set s = g.measures.get("system", {}) %}{% set a = g.measures.get("asp", {}) %}
<tr id="{{ id }}-{{ key }}"><td class="l">{{ g.get("name", key) }}</td>
<td>{{ "{:,}".format(g.families) }}</td><td data-figure="poverty_rate">{{ g.poverty_rate|pct }}</td>
<td>{{ "{:,}".format(g.poor_families) }}</td>
<td data-figure="coverage_of_poor">{{ s.get("coverage_of_poor")|pct }}</td>
<td>{{ s.get("exclusion_error")|pct }}</td><td>{{ s.get("inclusion_error")|pct }}</td>
<td>{{ a.get("coverage_of_poor")|pct }}</td><td>{{ a.get("inclusion_error")|pct }}</td>
<td>{{ s.get("share_to_poorest_20")|pct }}</td><td>{{ s.get("mean_benefit")|kzt }}</td></tr>
{% endfor %}
</table>
{% endmacro %}
<h3>By region</h3>
{{ group_table("by-region", t.by_region.items()|sort(attribute="1.name"), "region") }}
<h3>Urban and rural</h3>
{{ group_table("by-area", t.by_area.items(), "area") }}
<h3>Women- and men-headed families</h3>
{{ group_table("by-head-sex", t.by_head_sex.items(), "head") }}
<table id="gap"><tr><th class="l">gap, women − men (percentage points)</th><th>people poor</th>
<th>system coverage of the poor</th><th>system exclusion error</th><th>system inclusion error</th>
<th>ASP coverage of the poor</th><th>ASP inclusion error</th></tr>
{% set gs = t.head_sex_gap.get("measures", {}).get("system", {}) %}
{% set ga = t.head_sex_gap.get("measures", {}).get("asp", {}) %}
<tr><td class="l">women − men</td><td>{{ t.head_sex_gap.get("poverty_rate")|pp }}</td>
<td>{{ gs.get("coverage_of_poor")|pp }}</td><td>{{ gs.get("exclusion_error")|pp }}</td>
<td>{{ gs.get("inclusion_error")|pp }}</td><td>{{ ga.get("coverage_of_poor")|pp }}</td>
<td>{{ ga.get("inclusion_error")|pp }}</td></tr></table>
<h3>By well-being level</h3>
{{ group_table("by-level", t.by_level.items(), "level") }}
<h3>Alkire–Foster (levels, {{ t.alkire_foster.methodology }}, k = {{ t.alkire_foster.poverty_cutoff }})</h3>
<table id="alkire-foster"><tr><th class="l">group</th><th>H</th><th>A</th><th>M0</th></tr>
{% set af = t.alkire_foster %}
<tr><td class="l">national</td><td>{{ af.national.H|pct }}</td><td>{{ af.national.A|num }}</td>
<td>{{ af.national.M0|num }}</td></tr>
{% for k, v in af.by_area.items() %}<tr><td class="l">{{ k }}</td><td>{{ v.H|pct }}</td>
<td>{{ v.A|num }}</td><td>{{ v.M0|num }}</td></tr>{% endfor %}
{% for k, v in af.by_region.items()|sort %}<tr><td class="l">{{ d.regions.get(k, k) }}</td>
<td>{{ v.H|pct }}</td><td>{{ v.A|num }}</td><td>{{ v.M0|num }}</td></tr>{% endfor %}
</table>
{% endif %}

<h2>Findings list</h2>
<p id="listed-note">{% if d.listed.shown < d.listed.total %}The {{ "{:,}".format(d.listed.shown) }}
findings with the largest amount at risk of {{ "{:,}".format(d.listed.total) }}; the full list
is {{ d.listed.full_list }}.{% else %}All {{ "{:,}".format(d.listed.total) }} findings.{% endif %}
Every finding shows its rule, the measure's legal basis, the payment and entitlement rows it
rests on, and the run date ({{ d.run_date }}): press “trace”.</p>
<div class="filters">
  <select id="f-type"><option value="">every type</option></select>
  <select id="f-region"><option value="">every region</option></select>
  <select id="f-severity"><option value="">every severity</option></select>
  <select id="f-measure"><option value="">every measure</option></select>
  <input id="f-text" type="search" placeholder="family, person or evidence text">
  <span id="f-count"></span>
  <button id="f-prev">‹ previous</button><span id="f-page"></span><button id="f-next">next ›</button>
</div>
<table id="findings">
<thead><tr><th class="l">type</th><th class="l">severity</th><th class="l">measure</th>
<th class="l">region</th><th class="l">family</th><th class="l">person</th>
<th>at risk, KZT a year</th><th class="l">evidence</th><th></th></tr></thead>
<tbody></tbody>
</table>

<script id="report-data" type="application/json">{{ embedded|safe }}</script>
<script>
(function () {
  const D = JSON.parse(document.getElementById("report-data").textContent);
  const rows = D.listed.rows, PAGE = 50;
  let page = 0, shown = rows;
  const $ = (id) => document.getElementById(id);
  const el = (tag, text, cls) => {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  };
  const kzt = (x) => x == null ? "—" : Math.round(x).toLocaleString("en-US");
  const regionName = (r) => D.regions[r] || r;
  const filters = {type: "f-type", region: "f-region", severity: "f-severity", measure: "f-measure"};
  for (const [key, id] of Object.entries(filters)) {
    const values = [...new Set(rows.map((r) => r[key]))].sort();
    for (const v of values) {
      const o = el("option", key === "region" ? regionName(v) : v); o.value = v; $(id).append(o);
    }
    $(id).addEventListener("change", () => { page = 0; draw(); });
  }
  $("f-text").addEventListener("input", () => { page = 0; draw(); });
  $("f-prev").addEventListener("click", () => { if (page > 0) { page--; draw(); } });
  $("f-next").addEventListener("click", () => {
    if ((page + 1) * PAGE < shown.length) { page++; draw(); }
  });
  function table(head, body) {
    const t = el("table"), tr = el("tr");
    head.forEach((h) => tr.append(el("th", h, "l"))); t.append(tr);
    body.forEach((r) => { const x = el("tr"); r.forEach((c) => x.append(el("td", c, "l")));
                          t.append(x); });
    return t;
  }
  function trace(r) {
    const box = el("div"), rule = D.rules[r.type] || {}, m = D.measures[r.measure] || {};
    box.append(el("p", "Run date: " + D.run_date + " · finding " + r.id));
    box.append(el("p", "Rule (" + r.type + "): " + (rule.rule || "see docs/audit.md")
                       + " · data read: " + (rule.data || "")));
    box.append(el("p", "Measure " + r.measure + (m.name ? " (" + m.name + ")" : "") + ": "
                       + (m.legal_basis || "no national rule") + (m.conditions ? " · conditions: "
                       + m.conditions.join("; ") + " · amount: " + m.amount : "")));
    box.append(el("p", "Evidence: " + r.evidence));
    if (r.payments.length) {
      box.append(el("b", "Payment rows (ingested/payments.parquet)"));
      box.append(table(["payment_id", "period", "amount", "region", "paid"],
                       r.payments.map((p) => [p[0], p[1], kzt(p[2]), p[3], p[4]])));
    }
    if (r.entitlements.length) {
      box.append(el("b", "Entitlement rows (entitlements/entitlements.parquet)"));
      box.append(table(["measure", "person", "amount", "period", "conditions met"],
                       r.entitlements.map((e) => [e[0], e[1] || "", kzt(e[2]), e[3], e[4]])));
    }
    return box;
  }
  function draw() {
    const want = Object.fromEntries(Object.entries(filters).map(([k, id]) => [k, $(id).value]));
    const text = $("f-text").value.trim().toLowerCase();
    shown = rows.filter((r) => Object.entries(want).every(([k, v]) => !v || r[k] === v)
      && (!text || [r.family, r.person, r.evidence, r.id].some(
            (x) => x && String(x).toLowerCase().includes(text))));
    const body = document.querySelector("#findings tbody");
    body.replaceChildren();
    for (const r of shown.slice(page * PAGE, (page + 1) * PAGE)) {
      const tr = el("tr"); tr.dataset.id = r.id; tr.className = "finding";
      [[r.type, "l"], [r.severity, "l " + r.severity], [r.measure, "l"],
       [regionName(r.region), "l"], [r.family || "", "l"], [r.person || "", "l"],
       [kzt(r.amount), ""], [r.evidence, "l"]].forEach(([v, c]) => tr.append(el("td", v, c)));
      const b = el("button", "trace", "trace"), td = el("td"); td.append(b); tr.append(td);
      b.addEventListener("click", () => {
        const next = tr.nextElementSibling;
        if (next && next.classList.contains("detail")) { next.remove(); return; }
        const d = el("tr", null, "detail"), c = el("td"); c.colSpan = 9; c.append(trace(r));
        d.append(c); tr.after(d);
      });
      body.append(tr);
    }
    $("f-count").textContent = shown.length.toLocaleString("en-US") + " of "
      + rows.length.toLocaleString("en-US") + " listed";
    $("f-page").textContent = " page " + (shown.length ? page + 1 : 0) + " of "
      + Math.ceil(shown.length / PAGE) + " ";
  }
  draw();
})();
</script>
</body>
</html>
"""
