//! The report as one HTML file: inline CSS and SVG, no scripts, no fonts, no images, no
//! network requests, so it opens offline, archives as one file and prints (A4, charts kept
//! whole). Every string from the records is escaped.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::{Bucket, Count, Report, OUTCOMES};

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 56.0;
const BOTTOM: f64 = 28.0;
const PALETTE: [&str; 8] = [
    "#2e7d32", "#f9a825", "#c62828", "#6a1b9a", "#ef6c00", "#37474f", "#8d6e63", "#1565c0",
];

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A round tick step (1, 2, 2.5 or 5 times a power of ten; whole numbers) so that four ticks
/// reach `max`.
fn tick_step(max: u64) -> u64 {
    let mut magnitude: u64 = 1;
    loop {
        let quarter = (magnitude >= 10).then(|| magnitude * 25 / 10);
        let candidates = [
            Some(magnitude),
            Some(2 * magnitude),
            quarter,
            Some(5 * magnitude),
        ];
        for step in candidates.into_iter().flatten() {
            if step * 4 >= max {
                return step;
            }
        }
        magnitude = magnitude.saturating_mul(10);
    }
}

/// An axis label for a bucket: the date for daily buckets, date and hour otherwise.
fn bucket_label(start: &str) -> String {
    match start.strip_suffix("T00:00:00Z") {
        Some(date) => date.to_owned(),
        None => start.get(5..13).unwrap_or(start).replace('T', " ") + "h",
    }
}

/// A stacked bar chart: one `<g class="bucket">` per bucket (the data points), one `<rect>`
/// per non-zero series in it.
fn stacked_bars(
    id: &str,
    title: &str,
    buckets: &[Bucket],
    series: &[String],
    value: impl Fn(&Bucket, &str) -> u64,
) -> String {
    let mut svg = String::new();
    let total = |b: &Bucket| series.iter().map(|s| value(b, s)).sum::<u64>();
    let step = tick_step(buckets.iter().map(total).max().unwrap_or(0));
    let max = step * 4;
    let plot_w = WIDTH - LEFT - 10.0;
    let plot_h = HEIGHT - BOTTOM - 10.0;
    let slot = plot_w / buckets.len().max(1) as f64;
    let bar = (slot * 0.8).max(1.0);
    let _ = write!(
        svg,
        "<figure><figcaption>{}</figcaption><svg id=\"{id}\" class=\"chart\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-label=\"{}\">",
        escape(title),
        escape(title)
    );
    for tick in 0..=4 {
        let v = step * tick;
        let y = 10.0 + plot_h - plot_h * tick as f64 / 4.0;
        let _ = write!(
            svg,
            "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" class=\"grid\"/><text x=\"{}\" y=\"{:.1}\" class=\"tick\" text-anchor=\"end\">{v}</text>",
            WIDTH - 10.0,
            LEFT - 4.0,
            y + 3.0
        );
    }
    for (i, bucket) in buckets.iter().enumerate() {
        let x = LEFT + slot * i as f64 + (slot - bar) / 2.0;
        let _ = write!(
            svg,
            "<g class=\"bucket\" data-start=\"{}\" data-total=\"{}\"><title>{}: {}</title>",
            escape(&bucket.start),
            total(bucket),
            escape(&bucket.start),
            total(bucket)
        );
        let mut y = 10.0 + plot_h;
        for (s, name) in series.iter().enumerate() {
            let v = value(bucket, name);
            if v == 0 {
                continue;
            }
            let h = plot_h * v as f64 / max as f64;
            y -= h;
            let _ = write!(
                svg,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bar:.1}\" height=\"{h:.1}\" fill=\"{}\" data-series=\"{}\" data-value=\"{v}\"/>",
                PALETTE[s % PALETTE.len()],
                escape(name)
            );
        }
        svg.push_str("</g>");
    }
    let label_every = buckets.len().div_ceil(7).max(1);
    for (i, bucket) in buckets.iter().enumerate().step_by(label_every) {
        let x = LEFT + slot * i as f64 + slot / 2.0;
        let label = bucket_label(&bucket.start);
        let _ = write!(
            svg,
            "<text x=\"{x:.1}\" y=\"{}\" class=\"tick\" text-anchor=\"middle\">{}</text>",
            HEIGHT - 8.0,
            escape(&label)
        );
    }
    svg.push_str("</svg><div class=\"legend\">");
    for (s, name) in series.iter().enumerate() {
        let _ = write!(
            svg,
            "<span><i style=\"background:{}\"></i>{}</span>",
            PALETTE[s % PALETTE.len()],
            escape(name)
        );
    }
    svg.push_str("</div></figure>");
    svg
}

/// Horizontal bars, one `<g class="row">` per entry.
fn hbars(id: &str, title: &str, counts: &[Count]) -> String {
    let counts = &counts[..counts.len().min(20)];
    let mut svg = String::new();
    let row = 20.0;
    let height = row * counts.len().max(1) as f64 + 8.0;
    let label_w = 260.0;
    let max = counts.iter().map(|c| c.count).max().unwrap_or(1).max(1);
    let _ = write!(
        svg,
        "<figure><figcaption>{}</figcaption><svg id=\"{id}\" class=\"chart\" viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" aria-label=\"{}\">",
        escape(title),
        escape(title)
    );
    if counts.is_empty() {
        svg.push_str("<text x=\"4\" y=\"16\" class=\"tick\">none</text>");
    }
    for (i, count) in counts.iter().enumerate() {
        let y = 4.0 + row * i as f64;
        let w = (WIDTH - label_w - 70.0) * count.count as f64 / max as f64;
        let _ = write!(
            svg,
            "<g class=\"row\"><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" class=\"label\">{}</text><rect x=\"{label_w}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{:.1}\" fill=\"{}\"/><text x=\"{:.1}\" y=\"{:.1}\" class=\"tick\">{}</text></g>",
            label_w - 6.0,
            y + 13.0,
            escape(&count.name),
            row - 6.0,
            PALETTE[7],
            label_w + w + 4.0,
            y + 13.0,
            count.count
        );
    }
    svg.push_str("</svg></figure>");
    svg
}

fn table(head: &[&str], rows: &[Vec<String>]) -> String {
    let mut html = String::from("<table><thead><tr>");
    for h in head {
        let _ = write!(html, "<th>{}</th>", escape(h));
    }
    html.push_str("</tr></thead><tbody>");
    if rows.is_empty() {
        let _ = write!(html, "<tr><td colspan=\"{}\">none</td></tr>", head.len());
    }
    for row in rows {
        html.push_str("<tr>");
        for cell in row {
            // Hashes are kept whole for copying but may wrap, so they do not squeeze the
            // other columns.
            if cell.len() >= 32 && cell.bytes().all(|b| b.is_ascii_hexdigit()) {
                let _ = write!(html, "<td><code>{}</code></td>", escape(cell));
            } else {
                let _ = write!(html, "<td>{}</td>", escape(cell));
            }
        }
        html.push_str("</tr>");
    }
    html.push_str("</tbody></table>");
    html
}

fn outcome_cells(by_outcome: &BTreeMap<String, u64>) -> Vec<String> {
    OUTCOMES
        .iter()
        .map(|o| by_outcome.get(*o).copied().unwrap_or(0).to_string())
        .collect()
}

const STYLE: &str = "
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;color:#222;max-width:820px;margin:24px auto;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ccc;padding-bottom:4px}
.meta{color:#555}table{border-collapse:collapse;width:100%;margin:8px 0}th,td{border:1px solid #ddd;padding:3px 6px;text-align:left;font-variant-numeric:tabular-nums}
th{background:#f3f3f3}td.num{text-align:right}figure{margin:12px 0;break-inside:avoid}figcaption{font-weight:600;margin-bottom:4px}
svg.chart{width:100%;height:auto}.grid{stroke:#e5e5e5}.tick{font-size:10px;fill:#555}.label{font-size:11px;fill:#222}
.legend span{margin-right:12px;font-size:12px}.legend i{display:inline-block;width:10px;height:10px;margin-right:4px}
.ok{color:#2e7d32;font-weight:600}.bad{color:#c62828;font-weight:600}code{font-size:12px;word-break:break-all}
@media print{body{margin:0;max-width:none}h2{break-after:avoid}table{break-inside:auto}tr{break-inside:avoid}}
@page{size:A4;margin:14mm}
";

/// The report as a self-contained HTML page.
pub fn render_html(report: &Report) -> String {
    let mut html = String::new();
    let period = match (&report.period.since, &report.period.until) {
        (None, None) => "all records".to_owned(),
        (since, until) => format!(
            "{} to {}",
            since.as_deref().unwrap_or("the first record"),
            until.as_deref().unwrap_or("the last record")
        ),
    };
    let _ = write!(
        html,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>scrubgate audit report</title><style>{STYLE}</style></head><body>\
         <h1>scrubgate audit report</h1><p class=\"meta\">Period: {}{}. Records from {} to {}.</p>",
        escape(&period),
        report
            .period
            .project
            .map(|p| format!(", project {p}"))
            .unwrap_or_default(),
        escape(report.period.first_record.as_deref().unwrap_or("-")),
        escape(report.period.last_record.as_deref().unwrap_or("-")),
    );
    let all_intact = report.chains.iter().all(|c| c.intact);
    let _ = write!(
        html,
        "<h2>Summary</h2>{}<p>Chain verification: {}</p>",
        table(
            &["records", "items", "items dropped", "values redacted"],
            &[vec![
                report.totals.records.to_string(),
                report.totals.items.to_string(),
                report.totals.items_dropped.to_string(),
                report.totals.redactions.to_string(),
            ]],
        ),
        if report.chains.is_empty() {
            "<span>not checked</span>"
        } else if all_intact {
            "<span class=\"ok\">every chain intact</span>"
        } else {
            "<span class=\"bad\">TAMPERING DETECTED (see Chains)</span>"
        }
    );
    let outcomes: Vec<String> = OUTCOMES.iter().map(|o| (*o).to_owned()).collect();
    let granularity = report.timeline.granularity;
    html.push_str("<h2>Envelopes</h2>");
    html.push_str(&stacked_bars(
        "outcomes",
        &format!("Envelopes by outcome, per {granularity} (UTC)"),
        &report.timeline.buckets,
        &outcomes,
        |b, o| b.by_outcome.get(o).copied().unwrap_or(0),
    ));
    html.push_str(&table(
        &OUTCOMES,
        &[outcome_cells(&report.totals.by_outcome)],
    ));
    html.push_str("<h2>Redactions</h2>");
    let methods: Vec<String> = report
        .redactions_by_method
        .iter()
        .map(|c| c.name.clone())
        .collect();
    html.push_str(&stacked_bars(
        "redactions",
        &format!("Values redacted by method, per {granularity} (UTC)"),
        &report.timeline.buckets,
        &methods,
        |b, m| b.redactions_by_method.get(m).copied().unwrap_or(0),
    ));
    html.push_str(&hbars(
        "rules",
        "Values redacted by rule (top 20)",
        &report.redactions_by_rule,
    ));
    html.push_str(&hbars(
        "drops",
        "Items dropped by reason",
        &report.drops_by_reason,
    ));
    html.push_str("<h2>Projects</h2>");
    let mut head = vec!["project", "records"];
    head.extend(OUTCOMES);
    head.extend(["items dropped", "values redacted"]);
    let rows: Vec<Vec<String>> = report
        .projects
        .iter()
        .map(|p| {
            let mut row = vec![
                p.project_id
                    .map_or_else(|| "(none)".to_owned(), |p| p.to_string()),
                p.records.to_string(),
            ];
            row.extend(outcome_cells(&p.by_outcome));
            row.extend([p.items_dropped.to_string(), p.redactions.to_string()]);
            row
        })
        .collect();
    html.push_str(&table(&head, &rows));
    html.push_str("<h2>Top redacted paths</h2><p class=\"meta\">Where in the payload values were redacted (array positions as *). Paths only: the trail never holds a value.</p>");
    let rows: Vec<Vec<String>> = report
        .top_paths
        .iter()
        .map(|c| vec![c.name.clone(), c.count.to_string()])
        .collect();
    html.push_str(&table(&["path", "values redacted"], &rows));
    html.push_str("<h2>Chains</h2>");
    let rows: Vec<Vec<String>> = report
        .chains
        .iter()
        .map(|c| {
            vec![
                c.chain.clone(),
                if c.intact { "intact" } else { "TAMPERED" }.to_owned(),
                c.records.to_string(),
                c.head.clone(),
                c.detail.clone(),
            ]
        })
        .collect();
    html.push_str(&table(
        &["chain", "status", "records", "head hash", "detail"],
        &rows,
    ));
    html.push_str("<h2>Retention</h2>");
    let retention = &report.retention;
    let _ = write!(
        html,
        "<p>Retention period: {}. Oldest record kept: {}. {}</p>",
        retention
            .retention_days
            .map_or_else(|| "not known".to_owned(), |d| format!("{d} days")),
        escape(retention.oldest_record.as_deref().unwrap_or("-")),
        escape(&retention.note)
    );
    let rows: Vec<Vec<String>> = retention
        .dropped
        .iter()
        .map(|d| {
            vec![
                d.name.clone(),
                d.range_start.clone(),
                d.range_end.clone(),
                d.dropped_at.clone(),
            ]
        })
        .collect();
    html.push_str(&table(
        &["partition dropped", "from", "to", "dropped at"],
        &rows,
    ));
    html.push_str("<h2>Policies in force</h2>");
    let rows: Vec<Vec<String>> = report
        .policy_hashes
        .iter()
        .map(|p| {
            vec![
                p.policy_hash.clone(),
                p.first_seen.clone(),
                p.last_seen.clone(),
                p.records.to_string(),
            ]
        })
        .collect();
    html.push_str(&table(
        &["policy hash", "first seen", "last seen", "records"],
        &rows,
    ));
    let generated = &report.generated;
    let _ = write!(
        html,
        "<h2>How this report was produced</h2><p>By {} at {}, from {}.<br>Command: <code>{}</code></p></body></html>",
        escape(&generated.by),
        escape(&generated.at),
        escape(&generated.source),
        escape(&generated.command)
    );
    html.push('\n');
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_steps_are_round_and_reach_the_maximum() {
        let steps: Vec<u64> = [0, 3, 4, 9, 90, 101, 1234].map(tick_step).to_vec();
        assert_eq!(steps, [1, 1, 1, 5, 25, 50, 500]);
        assert_eq!(bucket_label("2026-11-16T00:00:00Z"), "2026-11-16");
        assert_eq!(bucket_label("2026-11-16T13:00:00Z"), "11-16 13h");
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
