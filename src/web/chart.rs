//! The last runs of an entry as an inline SVG: one column per run, its duration as a bar above the
//! axis and the bytes it fetched below, failed runs in red; each bar carries a `<title>` (the
//! exact figures, shown on hover and read by screen readers).

use super::esc;
use crate::catalog::RunRow;
use std::fmt::Write as _;

const WIDTH: f64 = 640.0;
const HALF: f64 = 70.0;
const LABEL: f64 = 90.0;

/// The chart, or a sentence when there is no finished run yet.
pub fn runs(runs: &[RunRow]) -> String {
    if runs.is_empty() {
        return "<p>No finished run yet.</p>".to_owned();
    }
    let secs = |r: &RunRow| r.started.map_or(0, |s| (r.ended - s).max(0)) as f64;
    let max_secs = runs.iter().map(secs).fold(1.0, f64::max);
    let max_bytes = runs.iter().filter_map(|r| r.bytes).max().unwrap_or(0).max(1) as f64;
    let step = (WIDTH - LABEL) / runs.len() as f64;
    let bar = (step * 0.7).max(1.0);
    let mut svg = format!(
        "<svg class=\"chart\" role=\"img\" viewBox=\"0 0 {WIDTH} {h}\" width=\"{WIDTH}\" height=\"{h}\" \
         xmlns=\"http://www.w3.org/2000/svg\"><title>The last {n} runs: duration above, bytes fetched below</title>\
         <line x1=\"{LABEL}\" y1=\"{HALF}\" x2=\"{WIDTH}\" y2=\"{HALF}\" stroke=\"#888\"/>\
         <text x=\"0\" y=\"14\">{top}</text><text x=\"0\" y=\"{lo}\">{bottom}</text>\
         <text x=\"0\" y=\"{mid}\">duration ↑</text><text x=\"0\" y=\"{mid2}\">fetched ↓</text>",
        h = HALF * 2.0 + 4.0,
        n = runs.len(),
        top = esc(&format!("{max_secs:.0} s")),
        bottom = esc(&crate::status::size(max_bytes as u64)),
        lo = HALF * 2.0,
        mid = HALF - 6.0,
        mid2 = HALF + 16.0,
    );
    for (i, r) in runs.iter().enumerate() {
        let x = LABEL + i as f64 * step;
        let up = (secs(r) / max_secs * (HALF - 2.0)).max(1.0);
        let down = r.bytes.map_or(0.0, |b| b as f64 / max_bytes * (HALF - 2.0));
        let color = if r.ok { "#2f6fb0" } else { "#c0392b" };
        let (when, _) = crate::status::tunasync_time(Some(r.ended));
        let outcome = if r.ok { "succeeded" } else { "failed" };
        let fetched = r.bytes.map_or(String::new(), |b| format!(", fetched {}", crate::status::size(b)));
        let title = esc(&format!("{when}: {outcome} in {:.0} s{fetched}", secs(r)));
        let _ = write!(
            svg,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{bar:.1}\" height=\"{up:.1}\" fill=\"{color}\"><title>{title}</title></rect>",
            HALF - up
        );
        if down > 0.0 {
            let _ = write!(
                svg,
                "<rect x=\"{x:.1}\" y=\"{HALF}\" width=\"{bar:.1}\" height=\"{down:.1}\" fill=\"#7fa8d1\"><title>{title}</title></rect>"
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_column_per_run_failed_in_red() {
        let runs = [
            RunRow { started: Some(100), ended: 160, ok: true, bytes: Some(2 << 20), files: Some(3) },
            RunRow { started: Some(200), ended: 230, ok: false, bytes: None, files: None },
        ];
        let svg = super::runs(&runs);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<rect").count(), 3, "two duration bars, one bytes bar: {svg}");
        assert!(svg.contains("#c0392b") && svg.contains("failed in 30 s") && svg.contains("fetched 2.0 MiB"));
        assert_eq!(super::runs(&[]), "<p>No finished run yet.</p>");
    }
}
