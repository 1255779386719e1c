//! `edgeslab top`: a node's live view, like traffic_top. A scraper thread
//! reads the admin API every interval; the UI thread turns each pair of
//! scrapes into a `stats::Report` and draws it with ratatui, and quits on
//! `q`, Esc or Ctrl-C with the terminal restored. `--once` draws a single
//! frame into a buffer and prints it as plain text, for scripts. The view
//! only reads; a node that stops answering leaves the last figures on
//! screen with the error above them.

use super::stats::{
    self, AdminClient, Interval, Miss, Percentiles, PhaseLatency, Report, Snapshot, StatsError,
    dash, percent,
};
use ratatui::Frame;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};
use std::io::Write;
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// How often keys are checked between redraws.
const TICK: Duration = Duration::from_millis(100);

#[derive(clap::Args, Debug, Clone)]
pub struct TopArgs {
    /// The node's admin URL, e.g. http://127.0.0.1:9090.
    #[arg(long, value_name = "URL")]
    pub admin: String,
    /// Time between scrapes, e.g. 500ms.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// Print one frame as plain text (after two scrapes) and exit.
    #[arg(long)]
    pub once: bool,
    /// Columns of the --once frame.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(20..=1000))]
    pub width: u16,
    /// Rows of the --once frame.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u16).range(10..=1000))]
    pub height: u16,
}

/// What one frame shows.
pub struct Screen {
    pub node: String,
    /// `None` until two scrapes have been made.
    pub report: Option<Report>,
    pub misses: Option<Vec<Miss>>,
    /// Why the last scrape failed, while it keeps failing.
    pub error: Option<String>,
}

/// `edgeslab top`: the live view, or with `--once` one frame on stdout.
pub fn top(args: &TopArgs) -> Result<(), StatsError> {
    let client = AdminClient::new(&args.admin);
    if args.once {
        let screen = Screen {
            report: Some(client.report(args.interval)?),
            misses: client.misses(),
            node: client.base,
            error: None,
        };
        let text = render_plain(&screen, args.width, args.height);
        return std::io::stdout()
            .write_all(text.as_bytes())
            .map_err(StatsError::Output);
    }
    live(client, args.interval)
}

/// One frame as text lines, trailing spaces trimmed.
pub fn render_plain(screen: &Screen, width: u16, height: u16) -> String {
    let Ok(mut terminal) = Terminal::new(TestBackend::new(width, height));
    let _ = terminal.draw(|f| draw(f, screen));
    let buffer = terminal.backend().buffer();
    let mut text = String::new();
    for y in 0..height {
        let row: String = (0..width)
            .filter_map(|x| buffer.cell((x, y)).map(|c| c.symbol()))
            .collect();
        text.push_str(row.trim_end());
        text.push('\n');
    }
    text
}

/// One scrape by the scraper thread.
struct Scrape {
    at: Instant,
    metrics: Result<Snapshot, StatsError>,
    misses: Option<Vec<Miss>>,
}

/// Leaves raw mode and the alternate screen however `live` returns.
struct RestoreTerminal;

impl Drop for RestoreTerminal {
    fn drop(&mut self) {
        let _ = ratatui::try_restore();
    }
}

fn live(client: AdminClient, interval: Duration) -> Result<(), StatsError> {
    // An unreachable node is reported before the screen is taken over.
    let first = client.metrics()?;
    let mut previous = (Instant::now(), first);
    let mut screen = Screen {
        node: client.base.clone(),
        report: None,
        misses: client.misses(),
        error: None,
    };
    let scrapes = spawn_scraper(client, interval);
    let _restore = RestoreTerminal;
    let mut terminal = ratatui::try_init().map_err(StatsError::Terminal)?;
    loop {
        terminal
            .draw(|f| draw(f, &screen))
            .map_err(StatsError::Terminal)?;
        if event::poll(TICK).map_err(StatsError::Terminal)?
            && let Event::Key(key) = event::read().map_err(StatsError::Terminal)?
            && quits(key)
        {
            return Ok(());
        }
        while let Ok(scrape) = scrapes.try_recv() {
            match scrape.metrics {
                Ok(after) => {
                    let iv = Interval {
                        before: &previous.1,
                        after: &after,
                        seconds: scrape.at.duration_since(previous.0).as_secs_f64(),
                    };
                    screen.report = Some(Report::new(&screen.node, &iv, stats::unix_now()));
                    screen.error = None;
                    previous = (scrape.at, after);
                }
                Err(e) => screen.error = Some(e.to_string()),
            }
            screen.misses = scrape.misses;
        }
    }
}

fn quits(key: KeyEvent) -> bool {
    key.kind == KeyEventKind::Press
        && match key.code {
            KeyCode::Char('q') | KeyCode::Esc => true,
            KeyCode::Char('c') => key.modifiers.contains(KeyModifiers::CONTROL),
            _ => false,
        }
}

/// Scrapes every `interval` until the view stops listening.
fn spawn_scraper(client: AdminClient, interval: Duration) -> Receiver<Scrape> {
    let (tx, rx) = mpsc::sync_channel(1);
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(interval);
            let metrics = client.metrics();
            let at = Instant::now();
            let misses = client.misses();
            if tx
                .send(Scrape {
                    at,
                    metrics,
                    misses,
                })
                .is_err()
            {
                return;
            }
        }
    });
    rx
}

fn draw(frame: &mut Frame, screen: &Screen) {
    let latency = latency_rows(screen.report.as_ref());
    let [header, latency_area, bottom] = Layout::vertical([
        Constraint::Length(5),
        Constraint::Length(latency.len() as u16 + 3),
        Constraint::Min(3),
    ])
    .areas(frame.area());
    let [shards, misses] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(bottom);
    frame.render_widget(header_view(screen), header);
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let mut lines = vec![Line::styled(stats::latency_header(), bold)];
    lines.extend(latency.iter().map(|p| Line::raw(stats::latency_row(p))));
    let block = Block::bordered().title(" latency over the interval: total, first byte ");
    frame.render_widget(Paragraph::new(lines).block(block), latency_area);
    let block = Block::bordered().title(" shards: req/s, hit ratio ");
    let inner = block.inner(shards);
    frame.render_widget(block, shards);
    frame.render_widget(
        Paragraph::new(shard_bars(screen.report.as_ref(), inner)),
        inner,
    );
    let block = Block::bordered().title(" top misses ");
    let lines: Vec<Line> = screen
        .misses
        .iter()
        .flatten()
        .map(|m| Line::raw(format!("{:>8} {}", m.count, m.url)))
        .collect();
    frame.render_widget(Paragraph::new(lines).block(block), misses);
}

fn header_view(screen: &Screen) -> Paragraph<'static> {
    let label = |s: &str| Span::styled(s.to_string(), Style::new().add_modifier(Modifier::BOLD));
    let mut first = vec![label("node "), Span::raw(screen.node.clone())];
    if let Some(e) = &screen.error {
        first.push(Span::styled(format!("   {e}"), Style::new().fg(Color::Red)));
    }
    let mut lines = vec![Line::from(first)];
    match &screen.report {
        None => lines.push(Line::raw("waiting for the second scrape…")),
        Some(r) => {
            let f1 = |v: Option<f64>| dash(v, |v| format!("{v:.1}"));
            lines.push(Line::from(vec![
                label("req/s "),
                Span::raw(format!("{:<10}", f1(r.requests.per_second))),
                label("hit ratio "),
                Span::raw(format!(
                    "{} (since start {})   ",
                    dash(r.hit_ratio, percent),
                    dash(r.hit_ratio_since_start, percent)
                )),
                label("bandwidth "),
                Span::raw(format!(
                    "{}   ",
                    dash(r.sent_bytes.per_second, |v| stats::bytes(v) + "/s")
                )),
                label("connections "),
                Span::raw(dash(r.connections_open, |v| format!("{v:.0}"))),
            ]));
            let responses: String = r
                .responses
                .iter()
                .map(|(class, c)| format!(" {class} {}", f1(c.per_second)))
                .collect();
            lines.push(Line::from(vec![
                label("origin req/s "),
                Span::raw(format!(
                    "{} (reuse {})   ",
                    f1(r.origin_requests.per_second),
                    dash(r.origin_reuse_ratio, percent)
                )),
                label("responses/s"),
                Span::raw(format!("{responses}   ")),
                label("up "),
                Span::raw(format!(
                    "{}   ",
                    dash(r.uptime_seconds, stats::duration_words)
                )),
                label("config "),
                Span::raw(dash(r.config_generation, |v| format!("{v:.0}"))),
            ]));
        }
    }
    Paragraph::new(lines).block(Block::bordered().title(" edgeslab top "))
}

/// The phases the node reports, or the usual ones with "-" when it has no
/// latency histograms.
fn latency_rows(report: Option<&Report>) -> Vec<PhaseLatency> {
    match report.map(|r| &r.latency) {
        Some(l) if !l.is_empty() => l.clone(),
        _ => ["hit", "miss", "pass", "refused"]
            .into_iter()
            .map(|phase| PhaseLatency {
                phase: phase.to_string(),
                requests_per_second: None,
                total: Percentiles::default(),
                first_byte: Percentiles::default(),
            })
            .collect(),
    }
}

/// One bar per shard, scaled to the busiest; as many as fit.
fn shard_bars(report: Option<&Report>, area: Rect) -> Vec<Line<'static>> {
    let Some(r) = report else {
        return Vec::new();
    };
    let busiest = r
        .shards
        .iter()
        .filter_map(|s| s.requests_per_second)
        .fold(0.0, f64::max);
    // "  0 " + bar + " 12345.6  93.1%"
    let bar_width = area.width.saturating_sub(20) as usize;
    let rows = area.height as usize;
    let mut lines = Vec::new();
    for (i, s) in r.shards.iter().enumerate() {
        if i + 1 == rows && r.shards.len() > rows {
            lines.push(Line::raw(format!("… {} more", r.shards.len() - i)));
            break;
        }
        let rps = s.requests_per_second.unwrap_or(0.0);
        let filled = match busiest > 0.0 {
            true => ((rps / busiest) * bar_width as f64).round() as usize,
            false => 0,
        };
        lines.push(Line::from(vec![
            Span::raw(format!("{:>3} ", s.shard)),
            Span::styled(
                "█".repeat(filled.min(bar_width)),
                Style::new().fg(Color::Green),
            ),
            Span::raw(" ".repeat(bar_width - filled.min(bar_width))),
            Span::raw(format!(
                " {:>8} {:>6}",
                dash(s.requests_per_second, |v| format!("{v:.1}")),
                dash(s.hit_ratio, percent)
            )),
        ]));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(latency: &str) -> Report {
        let scrape = |n: u64| {
            Snapshot::parse(&format!(
                "edgeslab_requests_total{{shard=\"0\"}} {}\nedgeslab_requests_total{{shard=\"1\"}} {}\n\
                 edgeslab_cache_hits_total{{shard=\"0\"}} {}\nedgeslab_cache_misses_total{{shard=\"0\"}} {}\n{latency}",
                100 * n,
                50 * n,
                90 * n,
                10 * n
            ))
        };
        let (before, after) = (scrape(1), scrape(2));
        let iv = Interval {
            before: &before,
            after: &after,
            seconds: 1.0,
        };
        Report::new("http://node", &iv, 0.0)
    }

    #[test]
    fn one_frame_shows_rates_bars_and_misses() {
        let screen = Screen {
            node: "http://node".into(),
            report: Some(report("")),
            misses: Some(vec![Miss {
                url: "example.com/a.jpg".into(),
                count: 12,
            }]),
            error: None,
        };
        let text = render_plain(&screen, 100, 30);
        assert_eq!(text.lines().count(), 30, "{text}");
        assert!(text.lines().all(|l| l.chars().count() <= 100), "{text}");
        assert!(text.contains("req/s 150.0"), "{text}");
        assert!(text.contains("hit ratio 90.0%"), "{text}");
        assert!(text.contains("12 example.com/a.jpg"), "{text}");
        // No histograms: the usual phases, with dashes.
        let hit = text.lines().find(|l| l.contains("│hit ")).expect("hit row");
        assert!(hit.contains(" - "), "{text}");
        // Shard 0 is the busiest: its bar is the full width, shard 1's half.
        let bar = |shard: &str| {
            let line = text
                .lines()
                .find(|l| l.starts_with(&format!("│  {shard} ")))
                .expect("bar");
            line.matches('█').count()
        };
        assert_eq!(bar("0"), 2 * bar("1"), "{text}");
    }

    #[test]
    fn a_small_frame_or_no_data_still_draws() {
        let screen = Screen {
            node: "http://node".into(),
            report: None,
            misses: None,
            error: Some("cannot reach".into()),
        };
        let text = render_plain(&screen, 20, 10);
        assert!(text.contains("node"), "{text}");
        let mut many = report("");
        many.shards = (0..64)
            .map(|n| stats::ShardRow {
                shard: n,
                ..many.shards[0].clone()
            })
            .collect();
        let screen = Screen {
            report: Some(many),
            ..screen
        };
        let text = render_plain(&screen, 100, 30);
        assert!(text.contains("more"), "{text}");
    }
}
