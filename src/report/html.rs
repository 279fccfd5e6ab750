//! The HTML report (`--html FILE`): one self-contained page, inline CSS and SVG, no
//! script and nothing fetched from the network, so it opens the same from a CI artifact
//! on a laptop without internet as it does in a browser on the runner.

use std::fmt::Write;

use super::files::RunRecord;
use super::phase_properties::phase_properties;
use crate::runner::{CaseResult, Outcome, PhaseTiming};
use crate::stats::{BackendShare, SplitVerdict};

/// Fill of an observed-share bar. Tests look for this colour in a screenshot.
pub const OBSERVED_COLOUR: &str = "#2b6cb0";
/// Stroke of the expected-weight marker.
pub const EXPECTED_COLOUR: &str = "#dd6b20";

const STYLE: &str = "
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 960px; color: #1a202c; padding: 0 1em; }
h1 { margin-bottom: 0.2em; }
.summary { font-size: 1.2em; font-weight: 600; }
.summary.ok { color: #276749; } .summary.bad { color: #9b2c2c; }
dl.env { display: grid; grid-template-columns: max-content auto; gap: 0.1em 1em; }
dl.env dt { font-weight: 600; } dl.env dd { margin: 0; }
section.case { border: 1px solid #cbd5e0; border-left: 6px solid #a0aec0; border-radius: 4px; margin: 1.2em 0; padding: 0.6em 1em; }
section.case.passed { border-left-color: #38a169; }
section.case.failed { border-left-color: #e53e3e; background: #fff5f5; }
section.case.skipped { border-left-color: #d69e2e; }
.badge { display: inline-block; min-width: 3.5em; text-align: center; border-radius: 3px; color: #fff; font-size: 0.8em; padding: 0.1em 0.4em; margin-right: 0.5em; vertical-align: middle; }
.passed .badge { background: #38a169; } .failed .badge { background: #e53e3e; } .skipped .badge { background: #d69e2e; }
p.warning { background: #fffbea; border: 1px solid #d69e2e; padding: 0.3em 0.6em; }
h2 { font-size: 1.1em; margin: 0.2em 0; font-family: ui-monospace, monospace; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #e2e8f0; padding: 0.2em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
pre { background: #f7fafc; border: 1px solid #e2e8f0; padding: 0.5em; overflow-x: auto; font-size: 12px; }
figure { margin: 0.5em 0; } figcaption { color: #4a5568; }
svg.split-chart { max-width: 100%; height: auto; }
.tables { display: flex; gap: 2em; flex-wrap: wrap; }
table.phases caption { text-align: left; font-family: ui-monospace, monospace; }
";

/// Renders the whole report page.
pub fn render(record: &RunRecord) -> String {
    let summary = &record.summary;
    let ok = summary.failed == 0 && summary.setup_failures == 0 && !summary.interrupted;
    let mut page = String::new();
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>meshcheck report: {} passed, {} failed</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <h1>meshcheck report</h1>\n<p class=\"summary {}\">{} passed, {} failed, {} skipped{}{} in {:.2} s</p>\n",
        summary.passed,
        summary.failed,
        if ok { "ok" } else { "bad" },
        summary.passed,
        summary.failed,
        summary.skipped,
        if summary.setup_failures > 0 {
            format!(", {} suite(s) could not be set up", summary.setup_failures)
        } else {
            String::new()
        },
        if summary.interrupted {
            " (interrupted)"
        } else {
            ""
        },
        record.duration_seconds,
    );
    let env = &record.environment;
    let rows = [
        ("started", Some(record.started_at.clone())),
        ("target", env.target.map(|t| t.to_string())),
        ("meshcheck", Some(env.meshcheck.clone())),
        ("Envoy", env.envoy.clone()),
        ("Istio", env.istio.clone()),
        (
            "Gateway API",
            env.gateway_api
                .as_ref()
                .map(|version| match &env.gateway_api_channel {
                    Some(channel) => format!("{version} ({channel})"),
                    None => version.clone(),
                }),
        ),
        ("Kubernetes", env.kubernetes.clone()),
    ];
    page.push_str("<dl class=\"env\">\n");
    for (name, value) in rows {
        if let Some(value) = value {
            let _ = writeln!(page, "<dt>{name}</dt><dd>{}</dd>", escape(&value));
        }
    }
    page.push_str("</dl>\n");
    for failure in &record.setup_failures {
        let _ = writeln!(
            page,
            "<section class=\"case failed\"><h2><span class=\"badge\">SETUP</span>{}</h2><pre>{}</pre></section>",
            escape(&failure.suite),
            escape(&failure.error)
        );
    }
    for case in &record.cases {
        case_section(&mut page, case);
    }
    if !record.phase_timings.is_empty() {
        page.push_str("<h2>Where the time went</h2>\n");
        for (suite, phases) in &record.phase_timings {
            phase_table(&mut page, suite, phases);
        }
    }
    page.push_str("</body>\n</html>\n");
    page
}

/// A suite's phase timings, as the JUnit properties name them (without `phase.`), the
/// slowest of the suite's own phases in bold: where a slow run spent its time.
fn phase_table(page: &mut String, suite: &str, phases: &[PhaseTiming]) {
    let rows = phase_properties(phases);
    let seconds = |value: &str| value.trim_end_matches('s').parse::<f64>().unwrap_or(0.0);
    // Details (`wait.ready.Deployment`, `converge.case.first-good`) overlap the phase
    // they belong to; the slowest is picked among the phases themselves.
    let slowest = rows
        .iter()
        .filter(|(name, _)| {
            !name.contains(".ready.")
                && !name.ends_with(".first-good")
                && !name.ends_with(".in-a-row")
        })
        .max_by(|a, b| seconds(&a.1).total_cmp(&seconds(&b.1)))
        .map(|(name, _)| name.clone());
    let _ = writeln!(
        page,
        "<table class=\"phases\"><caption>{}</caption><tr><th>phase</th><th>seconds</th></tr>",
        escape(suite)
    );
    for (name, value) in &rows {
        let label = escape(name.trim_start_matches("phase."));
        if slowest.as_ref() == Some(name) {
            let _ = writeln!(
                page,
                "<tr><td><b>{label}</b></td><td><b>{value}</b></td></tr>"
            );
        } else {
            let _ = writeln!(page, "<tr><td>{label}</td><td>{value}</td></tr>");
        }
    }
    page.push_str("</table>\n");
}

fn case_section(page: &mut String, case: &CaseResult) {
    let (class, badge) = match case.outcome {
        Outcome::Passed => ("passed", "PASS"),
        Outcome::Failed => ("failed", "FAIL"),
        Outcome::Skipped => ("skipped", "SKIP"),
    };
    let message = case.message.to_string();
    let _ = write!(
        page,
        "<section class=\"case {class}\" id=\"{}\">\n<h2><span class=\"badge\">{badge}</span>{}</h2>\n\
         <p>{}</p>\n<p>{} {} in {:.3} s ({:.0} req/s)</p>\n",
        escape(&case.id()),
        escape(&case.id()),
        escape(&message),
        case.requests,
        if case.requests == 1 {
            "request"
        } else {
            "requests"
        },
        case.duration.as_secs_f64(),
        case.requests_per_second,
    );
    for warning in &case.warnings {
        let _ = writeln!(
            page,
            "<p class=\"warning\"><strong>warning:</strong> {}</p>",
            escape(warning)
        );
    }
    if let Some(split) = &case.split {
        split_chart(page, split, &message);
    }
    page.push_str("<div class=\"tables\">\n");
    if !case.status_codes.is_empty() || !case.errors.is_empty() {
        page.push_str("<table class=\"status-codes\"><tr><th>status</th><th>responses</th><th>share</th></tr>\n");
        let total = case.requests.max(1) as f64;
        for (code, n) in &case.status_codes {
            let _ = writeln!(
                page,
                "<tr><td>{code}</td><td>{n}</td><td>{:.1}%</td></tr>",
                *n as f64 / total * 100.0
            );
        }
        for (kind, n) in &case.errors {
            let _ = writeln!(
                page,
                "<tr><td>error: {}</td><td>{n}</td><td>{:.1}%</td></tr>",
                escape(kind),
                *n as f64 / total * 100.0
            );
        }
        page.push_str("</table>\n");
    }
    if !case.proxy_counters.is_empty() {
        page.push_str(
            "<table class=\"proxy-counters\"><tr><th>proxy counter</th><th>value</th></tr>\n",
        );
        for (name, value) in &case.proxy_counters {
            let _ = writeln!(page, "<tr><td>{}</td><td>{value}</td></tr>", escape(name));
        }
        page.push_str("</table>\n");
    }
    if let Some(latency) = &case.latency {
        let _ = writeln!(
            page,
            "<table class=\"latency\"><tr><th>latency</th><th>p50</th><th>p90</th><th>p99</th><th>max</th></tr>\n\
             <tr><td>ms</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td></tr></table>",
            latency.p50_ms, latency.p90_ms, latency.p99_ms, latency.max_ms
        );
    }
    page.push_str("</div>\n");
    for section in &case.diagnostics {
        let _ = writeln!(
            page,
            "<details{}><summary>{}</summary><pre>{}</pre></details>",
            if case.outcome == Outcome::Failed {
                " open"
            } else {
                ""
            },
            escape(&section.title),
            escape(&section.body)
        );
    }
    page.push_str("</section>\n");
}

/// Font sizes of the chart's texts, in SVG user units (pixels at full size).
const NAME_FONT: f64 = 13.0;
const NOTE_FONT: f64 = 12.0;
/// How wide a character of the browser's sans-serif font may be, in ems: digits and
/// most capitals of DejaVu Sans and Liberation Sans advance 0.56–0.70 em. The page has
/// no script, so the SVG cannot measure its own text; columns are sized on this safe
/// side instead, so that no label is cut at the chart's edge.
const WIDEST_GLYPH_EM: f64 = 0.7;

/// The width `text` may take at `font_size`, on the safe side.
fn text_width(text: &str, font_size: f64) -> f64 {
    text.chars().count() as f64 * font_size * WIDEST_GLYPH_EM
}

/// The note beside a backend's bar: observed share, interval, expected share, count.
fn backend_note(backend: &BackendShare) -> String {
    format!(
        "{:.1}% [{:.1}, {:.1}] vs {:.1}% ({} resp.)",
        backend.observed_share * 100.0,
        backend.ci_low * 100.0,
        backend.ci_high * 100.0,
        backend.expected_share * 100.0,
        backend.observed
    )
}

/// One row per backend: the observed share as a bar, its confidence interval as a
/// whisker, and the weight the route promises as a dashed marker. The name column and
/// the note column are as wide as their longest text, and the chart scales down to the
/// page's width (CSS) rather than running past it. The verdict's reason is the case's
/// message already; the caption repeats it only when the message does not carry it.
fn split_chart(page: &mut String, split: &SplitVerdict, message: &str) {
    const PLOT: f64 = 520.0;
    const ROW: f64 = 40.0;
    const TOP: f64 = 28.0;
    const GAP: f64 = 10.0;
    let notes: Vec<String> = split.backends.iter().map(backend_note).collect();
    let label = split
        .backends
        .iter()
        .map(|b| text_width(&b.backend, NAME_FONT))
        .fold(120.0, f64::max)
        + 2.0 * GAP;
    let note_width = notes
        .iter()
        .map(|n| text_width(n, NOTE_FONT))
        .fold(0.0, f64::max);
    let x = |share: f64| label + share.clamp(0.0, 1.0) * PLOT;
    let height = TOP + ROW * split.backends.len() as f64 + 30.0;
    let width = (label + PLOT + GAP + note_width + GAP).ceil();
    let _ = write!(
        page,
        "<figure class=\"split\">\n<svg class=\"split-chart\" xmlns=\"http://www.w3.org/2000/svg\" \
         width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\" \
         aria-label=\"observed share per backend against the expected weight\">\n"
    );
    for tick in [0.0, 0.25, 0.5, 0.75, 1.0] {
        let _ = writeln!(
            page,
            "<line x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\" stroke=\"#e2e8f0\"/>\
             <text x=\"{0}\" y=\"{3}\" font-size=\"11\" text-anchor=\"middle\" fill=\"#718096\">{4:.0}%</text>",
            x(tick),
            TOP - 6.0,
            height - 30.0,
            TOP - 10.0,
            tick * 100.0
        );
    }
    for (i, (backend, note)) in split.backends.iter().zip(&notes).enumerate() {
        let top = TOP + ROW * i as f64 + 6.0;
        let middle = top + 11.0;
        let text_y = top + 15.0;
        let label_x = label - GAP;
        let name = escape(&backend.backend);
        let bar = backend.observed_share.clamp(0.0, 1.0) * PLOT;
        let (low, high, expected) = (
            x(backend.ci_low),
            x(backend.ci_high),
            x(backend.expected_share),
        );
        let (tick_top, tick_bottom) = (middle - 5.0, middle + 5.0);
        let (marker_top, marker_bottom) = (top - 4.0, top + 26.0);
        let note_x = label + PLOT + GAP;
        let note = escape(note);
        let _ = writeln!(
            page,
            "<text x=\"{label_x}\" y=\"{text_y}\" font-size=\"{NAME_FONT}\" text-anchor=\"end\">{name}</text>\n\
             <rect class=\"observed\" x=\"{label}\" y=\"{top}\" width=\"{bar:.2}\" height=\"22\" fill=\"{OBSERVED_COLOUR}\"/>\n\
             <line class=\"interval\" x1=\"{low:.2}\" y1=\"{middle}\" x2=\"{high:.2}\" y2=\"{middle}\" stroke=\"#1a202c\" stroke-width=\"2\"/>\
             <line x1=\"{low:.2}\" y1=\"{tick_top}\" x2=\"{low:.2}\" y2=\"{tick_bottom}\" stroke=\"#1a202c\" stroke-width=\"2\"/>\
             <line x1=\"{high:.2}\" y1=\"{tick_top}\" x2=\"{high:.2}\" y2=\"{tick_bottom}\" stroke=\"#1a202c\" stroke-width=\"2\"/>\n\
             <line class=\"expected\" x1=\"{expected:.2}\" y1=\"{marker_top}\" x2=\"{expected:.2}\" y2=\"{marker_bottom}\" stroke=\"{EXPECTED_COLOUR}\" stroke-width=\"4\" stroke-dasharray=\"5 3\"/>\n\
             <text x=\"{note_x}\" y=\"{text_y}\" font-size=\"{NOTE_FONT}\">{note}</text>"
        );
    }
    let legend_y = height - 10.0;
    // The interval's legend is drawn as the whisker is: a level line between two ticks.
    let (whisker_left, whisker_right, whisker_y) = (label + 130.0, label + 150.0, legend_y - 4.0);
    let _ = writeln!(
        page,
        "<rect x=\"{label}\" y=\"{}\" width=\"14\" height=\"10\" fill=\"{OBSERVED_COLOUR}\"/>\
         <text x=\"{}\" y=\"{legend_y}\" font-size=\"11\">observed share</text>\
         <line x1=\"{whisker_left}\" y1=\"{whisker_y}\" x2=\"{whisker_right}\" y2=\"{whisker_y}\" stroke=\"#1a202c\" stroke-width=\"2\"/>\
         <line x1=\"{whisker_left}\" y1=\"{}\" x2=\"{whisker_left}\" y2=\"{}\" stroke=\"#1a202c\" stroke-width=\"2\"/>\
         <line x1=\"{whisker_right}\" y1=\"{}\" x2=\"{whisker_right}\" y2=\"{}\" stroke=\"#1a202c\" stroke-width=\"2\"/>\
         <text x=\"{}\" y=\"{legend_y}\" font-size=\"11\">confidence interval</text>\
         <line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{legend_y}\" stroke=\"{EXPECTED_COLOUR}\" stroke-width=\"4\"/>\
         <text x=\"{}\" y=\"{legend_y}\" font-size=\"11\">expected weight</text>\n</svg>",
        legend_y - 9.0,
        label + 20.0,
        whisker_y - 4.0,
        whisker_y + 4.0,
        whisker_y - 4.0,
        whisker_y + 4.0,
        label + 158.0,
        label + 290.0,
        legend_y - 12.0,
        label + 290.0,
        label + 298.0,
    );
    let mut caption = Vec::new();
    if !message.contains(&split.reason) {
        caption.push(escape(&split.reason));
    }
    if split.unknown > 0 {
        caption.push(format!(
            "{} {} named no expected backend.",
            split.unknown,
            if split.unknown == 1 {
                "response"
            } else {
                "responses"
            }
        ));
    }
    if caption.is_empty() {
        page.push_str("</figure>\n");
    } else {
        let _ = writeln!(
            page,
            "<figcaption>{}</figcaption>\n</figure>",
            caption.join(" ")
        );
    }
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn escapes_markup_in_names_and_messages() {
        assert_eq!(
            escape("<b>\"a\" & 'b'</b>"),
            "&lt;b&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/b&gt;"
        );
    }
}
