//! The `--find-max` report as one self-contained HTML file: inline SVG plots drawn with
//! `plotters` (no script, no CDN), the verdict, the plan and every step in a table.

use super::Capacity;
use plotters::prelude::*;

const W: u32 = 640;
const H: u32 = 360;

type Series<'a> = (&'a str, RGBColor, Vec<(f64, f64)>);

pub fn render(c: &Capacity) -> String {
    let mut steps: Vec<_> = c.steps.iter().collect();
    steps.sort_by(|a, b| a.offered.total_cmp(&b.offered));
    let by_offered = |f: &dyn Fn(&super::Step) -> Option<f64>| -> Vec<(f64, f64)> {
        steps
            .iter()
            .filter_map(|s| Some((s.offered, f(s)?)))
            .collect()
    };
    let stage = |name: &'static str| move |s: &super::Step| s.stages.rates.get(name).copied();
    let rates = chart(
        "Offered vs delivered",
        "offered msg/s",
        "msg/s",
        &[
            (
                "offered",
                RGBColor(170, 170, 170),
                by_offered(&|s| Some(s.offered)),
            ),
            ("sent by the fleet", BLUE, by_offered(&|s| Some(s.achieved))),
            ("into Kafka", GREEN, by_offered(&stage("into Kafka"))),
            ("routed", MAGENTA, by_offered(&stage("routed"))),
        ],
        c.knee,
    );
    let latency = chart(
        "Latency per step",
        "offered msg/s",
        "ms",
        &[
            ("PUBACK p50", CYAN, by_offered(&|s| Some(s.puback.p50_ms))),
            ("PUBACK p99", BLUE, by_offered(&|s| Some(s.puback.p99_ms))),
            (
                "publish→Kafka p99",
                RED,
                by_offered(&|s| s.publish_to_kafka.as_ref().map(|l| l.p99_ms)),
            ),
        ],
        c.knee,
    );
    let lag: Vec<(f64, f64)> = c
        .lag_timeline
        .iter()
        .map(|l| (l.at_s, l.lag as f64))
        .collect();
    let starts: Vec<(f64, f64)> = c.steps.iter().map(|s| (s.started_s, 0.0)).collect();
    let lag = chart(
        "Consumer lag over the search (dots: step starts)",
        "seconds",
        "records behind",
        &[("lag", MAGENTA, lag), ("step start", BLACK, starts)],
        None,
    );
    let cpu = chart(
        "Sluice processes' CPU per step",
        "offered msg/s",
        "cores",
        &[("CPU cores", RED, by_offered(&|s| Some(s.stages.cpu_cores)))],
        c.knee,
    );
    page(c, &[rates, latency, lag, cpu])
}

/// A plain run (`--profile`, e.g. a soak): lag and resident memory over time, with their
/// trends, and the objectives' verdict left to the terminal and the JSON.
pub fn render_run(r: &crate::report::Report) -> String {
    let lag: Vec<(f64, f64)> = r
        .lag_timeline
        .iter()
        .map(|l| (l.at_s, l.lag as f64))
        .collect();
    let plots = [
        chart(
            "Consumer lag",
            "seconds",
            "records behind",
            &[("lag", MAGENTA, lag)],
            None,
        ),
        chart(
            "Sluice processes' resident memory",
            "seconds",
            "MiB",
            &[("RSS", BLUE, r.rss_timeline.clone())],
            None,
        ),
    ];
    let trend = |v: Option<f64>, unit: &str| v.map_or("-".into(), |v| format!("{v:.2} {unit}"));
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Sluice load test</title>\
         <style>body{{font-family:sans-serif;margin:24px}}</style></head><body><h1>Sluice load test</h1>\
         <p id=\"trends\">Lag growth: {} of the offered rate. Resident memory growth: {} of its level \
         per minute. Sent {}, acknowledged {}, lost {}.</p><div>{}</div></body></html>",
        trend(r.lag_growth.map(|g| g * 100.0), "%"),
        trend(r.rss_growth, "%"),
        r.sent,
        r.acked,
        r.lost.map_or("-".into(), |l| l.to_string()),
        plots.iter().map(|p| format!("<figure>{p}</figure>")).collect::<String>(),
    )
}

/// One line chart with points; `knee` draws a vertical marker.
fn chart(title: &str, x_desc: &str, y_desc: &str, series: &[Series], knee: Option<f64>) -> String {
    let mut svg = String::new();
    let points = series.iter().flat_map(|s| s.2.iter());
    let x_max = points.clone().map(|p| p.0).fold(1.0, f64::max) * 1.05;
    let y_max = points.map(|p| p.1).fold(1.0, f64::max) * 1.1;
    {
        let root = SVGBackend::with_string(&mut svg, (W, H)).into_drawing_area();
        let drawn = (|| -> Result<(), Box<dyn std::error::Error + '_>> {
            root.fill(&WHITE)?;
            let mut ch = ChartBuilder::on(&root)
                .caption(title, ("sans-serif", 18))
                .margin(10)
                .x_label_area_size(36)
                .y_label_area_size(64)
                .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
            let label = |v: &f64| {
                if v.abs() >= 100.0 {
                    format!("{v:.0}")
                } else {
                    format!("{v:.1}")
                }
            };
            ch.configure_mesh()
                .x_desc(x_desc)
                .y_desc(y_desc)
                .x_label_formatter(&label)
                .y_label_formatter(&label)
                .draw()?;
            for (name, color, pts) in series {
                let color = *color;
                ch.draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))?
                    .label(*name)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
                ch.draw_series(pts.iter().map(|p| Circle::new(*p, 3, color.filled())))?;
            }
            if let Some(k) = knee {
                ch.draw_series(LineSeries::new([(k, 0.0), (k, y_max)], RED.stroke_width(1)))?
                    .label(format!("knee {k:.0}/s"))
                    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], RED));
            }
            ch.configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .position(SeriesLabelPosition::UpperLeft)
                .draw()?;
            root.present()?;
            Ok(())
        })();
        if let Err(e) = drawn {
            return format!(
                "<p>plot '{}' failed: {}</p>",
                esc(title),
                esc(&e.to_string())
            );
        }
    }
    svg
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn page(c: &Capacity, plots: &[String]) -> String {
    let knee = c
        .knee
        .map_or("none found".into(), |k| format!("{k:.0} msg/s"));
    let limit = c.limit.as_ref().map_or("-".into(), |l| {
        format!("<b>{}</b> — {}", esc(&l.stage), esc(&l.evidence))
    });
    let plan = c.plan.as_ref().map_or("<p>Run with <code>--plan-for RATE</code> or <code>--plan-for 5x</code> for a replica plan.</p>".into(), |p| {
        format!(
            "<table id=\"plan\"><tr><th>target</th><td>{:.0} msg/s (+{:.0} % headroom)</td></tr>\
             <tr><th>gateways / ingest</th><td>{} (≈{:.0} msg/s each)</td></tr>\
             <tr><th>routers</th><td>{} (≈{:.0} msg/s each)</td></tr>\
             <tr><th>raw-topic partitions</th><td>{}</td></tr>\
             <tr><th>KEDA lagThreshold</th><td>{}</td></tr></table><ul>{}</ul>",
            p.target_rate, p.headroom * 100.0, p.gateways, p.gateway_capacity, p.routers,
            p.router_capacity, p.partitions, p.keda_lag_threshold,
            p.notes.iter().map(|n| format!("<li>{}</li>", esc(n))).collect::<String>()
        )
    });
    let rows: String = c
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            format!(
                "<tr class=\"{}\"><td>{}</td><td>{:.0}</td><td>{:.0}</td><td>{:.1}</td><td>{}</td><td>{}</td><td>{:.2}</td><td>{:.0}</td><td>{}</td></tr>",
                if s.sustainable { "ok" } else { "bad" },
                i + 1, s.offered, s.achieved, s.puback.p99_ms,
                s.publish_to_kafka.as_ref().map_or("-".into(), |l| format!("{:.1}", l.p99_ms)),
                s.lag_growth.map_or("-".into(), |g| format!("{:.1} %", g * 100.0)),
                s.stages.cpu_cores, s.stages.rss_mib,
                if s.sustainable { "sustainable".into() } else { esc(&s.violated.join("; ")) },
            )
        })
        .collect();
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Sluice capacity</title><style>\
         body{{font-family:sans-serif;margin:24px;color:#1d2433}} .plots{{display:flex;flex-wrap:wrap;gap:12px}}\
         table{{border-collapse:collapse;margin:8px 0}} td,th{{border-bottom:1px solid #dde1e8;padding:4px 10px;text-align:right}}\
         tr.bad td{{color:#c2372b}} #plan th{{text-align:left}}</style></head><body>\
         <h1>Sluice capacity</h1>\
         <p id=\"knee\">Knee: <b>{knee}</b> — {}.</p><p id=\"limit\">Gives out first: {limit}</p>\
         <p>Objectives per step: {}. {} steps in {:.0} s on {} cores.</p>\
         <h2>Plan</h2>{plan}<h2>Plots</h2><div class=\"plots\">{}</div>\
         <h2>Steps</h2><table id=\"steps\"><tr><th>#</th><th>offered/s</th><th>sent/s</th><th>PUBACK p99 ms</th>\
         <th>publish→Kafka p99 ms</th><th>lag growth</th><th>CPU cores</th><th>RSS MiB</th><th>verdict</th></tr>{rows}</table>\
         </body></html>",
        esc(&c.bound_says),
        esc(&c.objectives.join(", ")),
        c.steps.len(),
        c.secs,
        c.cores,
        plots.iter().map(|p| format!("<figure>{p}</figure>")).collect::<String>(),
    )
}
