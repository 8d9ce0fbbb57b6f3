//! The load bench's report: the Markdown tables of the main and envelope
//! rows, and the SVG chart of the main rows' ratios to the raw `GET`.

use std::fmt::Write as _;

use super::measure::Figures;
use super::{Row, TASKS};

/// The envelope table: each row's figures beside the raw `GET`'s, and the
/// bytes each stores for the value.
pub(super) fn envelope_table(envelope: &[(usize, Vec<Figures>, Vec<usize>)]) -> String {
    let mut out = String::new();
    writeln!(
        out,
        "| value | contender | stored bytes | 1 task p50 (µs) | {TASKS} tasks (hits/s) | ÷ GET | client CPU per hit (µs) | CPU ÷ GET |"
    )
    .unwrap();
    writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|").unwrap();
    for (size, figures, stored) in envelope {
        let floor = figures[0];
        for ((row, f), bytes) in Row::ENVELOPE.iter().zip(figures).zip(stored) {
            writeln!(
                out,
                "| JSON, {} | {} | {bytes} | {:.1} | {:.0} | {:.2} | {:.2} | {:.2} |",
                human(*size),
                row.name(),
                f.p50_us,
                f.ops_per_s,
                f.ops_per_s / floor.ops_per_s,
                f.cpu_us,
                f.cpu_us / floor.cpu_us,
            )
            .unwrap();
        }
    }
    out
}

pub(super) fn table(results: &[(usize, Vec<Figures>)]) -> String {
    let mut out = String::new();
    writeln!(
        out,
        "| value | contender | 1 task p50 (µs) | p99 (µs) | p50 ÷ GET | {TASKS} tasks (hits/s) | ÷ GET | client CPU per hit (µs) |"
    )
    .unwrap();
    writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|").unwrap();
    for (size, figures) in results {
        for (row, f) in Row::ALL.iter().zip(figures) {
            let floor = figures[row.floor()];
            writeln!(
                out,
                "| {} | {} | {:.1} | {:.1} | {:.2} | {:.0} | {:.2} | {:.2} |",
                human(*size),
                row.name(),
                f.p50_us,
                f.p99_us,
                f.p50_us / floor.p50_us,
                f.ops_per_s,
                f.ops_per_s / floor.ops_per_s,
                f.cpu_us,
            )
            .unwrap();
        }
    }
    out
}

/// One table of `rows` by size (`LOAD_BENCH_ONLY=cluster`, `tracked`),
/// each row's latency, throughput and client CPU also as ratios to the
/// first row's (its floor: the raw `GET`).
pub(super) fn ratio_table(rows: &[Row], results: &[(usize, Vec<Figures>)]) -> String {
    let mut out = String::new();
    writeln!(
        out,
        "| value | contender | 1 task p50 (µs) | p50 ÷ GET | {TASKS} tasks (hits/s) | ÷ GET | client CPU per hit (µs) | CPU ÷ GET |"
    )
    .unwrap();
    writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|").unwrap();
    for (size, figures) in results {
        let floor = figures[0];
        for (row, f) in rows.iter().zip(figures) {
            writeln!(
                out,
                "| {} | {} | {:.1} | {:.2} | {:.0} | {:.2} | {:.2} | {:.2} |",
                human(*size),
                row.name(),
                f.p50_us,
                f.p50_us / floor.p50_us,
                f.ops_per_s,
                f.ops_per_s / floor.ops_per_s,
                f.cpu_us,
                f.cpu_us / floor.cpu_us,
            )
            .unwrap();
        }
    }
    out
}

fn human(size: usize) -> String {
    if size >= 1024 {
        format!("{} KiB", size / 1024)
    } else {
        format!("{size} B")
    }
}

/// A row's figure as a ratio to the floor's.
type Ratio = fn(&Figures, &Figures) -> f64;

/// Two panels of grouped bars: p50 latency and throughput, each as a ratio
/// to the raw `GET` of the same size (1.0, dashed).
pub(super) fn chart(results: &[(usize, Vec<Figures>)]) -> String {
    const COLORS: [&str; Row::ALL.len()] = [
        "#555555", "#999999", "#d08c2c", "#2c6fd0", "#6fa8f0", "#777777", "#333333", "#2ca05a",
        "#7fd49a", "#8e44ad", "#c39bd3", "#b0b0b0",
    ];
    let (width, panel_h, top, left) = (900.0, 260.0, 40.0, 60.0);
    let group_w = (width - left - 20.0) / results.len() as f64;
    let bar_w = group_w / (Row::ALL.len() as f64 + 1.5);
    let mut svg = String::new();
    let height = top + 2.0 * (panel_h + 60.0) + 40.0;
    writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">"#
    )
    .unwrap();
    writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#).unwrap();
    let panels: [(&str, Ratio); 2] = [
        (
            "1 task: p50 latency ÷ raw GET (lower is better)",
            |f, floor| f.p50_us / floor.p50_us,
        ),
        (
            "64 tasks: hits/s ÷ raw GET (higher is better)",
            |f, floor| f.ops_per_s / floor.ops_per_s,
        ),
    ];
    for (p, (title, ratio)) in panels.iter().enumerate() {
        let y0 = top + p as f64 * (panel_h + 60.0);
        let max = results
            .iter()
            .flat_map(|(_, fs)| fs.iter().map(|f| ratio(f, &fs[0])))
            .fold(1.0_f64, f64::max)
            * 1.15;
        let y_of = |r: f64| y0 + panel_h - r / max * panel_h;
        writeln!(
            svg,
            r#"<text x="{left}" y="{}" font-weight="bold">{title}</text>"#,
            y0 - 12.0
        )
        .unwrap();
        writeln!(
            svg,
            r##"<line x1="{left}" x2="{}" y1="{y}" y2="{y}" stroke="#000" stroke-dasharray="4 3"/><text x="{}" y="{}">1.0</text>"##,
            width - 20.0,
            left - 30.0,
            y_of(1.0) + 4.0,
            y = y_of(1.0),
        )
        .unwrap();
        for (g, (size, figures)) in results.iter().enumerate() {
            let gx = left + g as f64 * group_w + bar_w * 0.75;
            for (i, f) in figures.iter().enumerate() {
                let r = ratio(f, &figures[Row::ALL[i].floor()]);
                let x = gx + i as f64 * bar_w;
                let y = y_of(r);
                writeln!(
                    svg,
                    r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{}"/><text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="10">{r:.2}</text>"#,
                    bar_w * 0.9,
                    y0 + panel_h - y,
                    COLORS[i],
                    x + bar_w * 0.45,
                    y - 3.0,
                )
                .unwrap();
            }
            writeln!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                gx + bar_w * Row::ALL.len() as f64 / 2.0,
                y0 + panel_h + 16.0,
                human(*size)
            )
            .unwrap();
        }
    }
    let ly = height - 24.0;
    for (i, row) in Row::ALL.iter().enumerate() {
        let x = left + i as f64 * 165.0;
        writeln!(
            svg,
            r#"<rect x="{x}" y="{}" width="12" height="12" fill="{}"/><text x="{}" y="{ly}">{}</text>"#,
            ly - 10.0,
            COLORS[i],
            x + 16.0,
            row.name().replace('#', "&#35;"),
        )
        .unwrap();
    }
    svg.push_str("</svg>\n");
    svg
}
