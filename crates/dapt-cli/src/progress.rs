//! How a run looks: an indicatif bar per running stage on a terminal; otherwise (CI,
//! batch-scheduler logs, `| tee`) plain log lines, plus one line per running stage
//! about every 10 s (`DAPT_PROGRESS_INTERVAL_SECS`) with its count, rate and ETA;
//! and the final table.

use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal;
use std::sync::mpsc::{RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use dapt_dag::{Observer, Outcome, RunSummary};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// Seconds between two progress lines of a running stage when stderr is not a terminal.
pub const INTERVAL_ENV: &str = "DAPT_PROGRESS_INTERVAL_SECS";

pub struct RunProgress {
    bars: Option<(MultiProgress, Mutex<HashMap<String, ProgressBar>>)>,
    /// Without a terminal: what each running stage has done, read by the ticker.
    running: Arc<Mutex<BTreeMap<String, Running>>>,
    ticker: Option<(Sender<()>, JoinHandle<()>)>,
    t0: Instant,
}

/// A running stage's progress as the ticker reports it.
struct Running {
    started: Instant,
    done: u64,
    total: Option<u64>,
    unit: String,
    /// When and at what count the current unit was first seen: the rate counts only
    /// work done in this attempt (not shards an earlier one finished).
    since: Option<(Instant, u64)>,
    status: String,
}

impl Running {
    fn line(&self, stage: &str, now: Instant) -> String {
        let mut line = format!(
            "{stage}: running {}",
            human_duration(now.duration_since(self.started).as_secs_f64())
        );
        if !self.unit.is_empty() {
            line.push_str(&format!(", {}", thousands(self.done)));
            if let Some(total) = self.total {
                line.push_str(&format!("/{}", thousands(total)));
            }
            line.push_str(&format!(" {}", self.unit));
            if self.total.is_some_and(|t| self.done >= t) {
                // A finished count: the stage is on to work it does not count.
                line.push_str(" done");
            } else if let Some((t, d0)) = self.since {
                let secs = now.duration_since(t).as_secs_f64();
                let rate = if secs > 0.0 {
                    self.done.saturating_sub(d0) as f64 / secs
                } else {
                    0.0
                };
                line.push_str(&format!(", {} {}/s", rate_text(rate), self.unit));
                match self.total {
                    Some(total) if rate > 0.0 && total >= self.done => line.push_str(&format!(
                        ", eta {}",
                        human_duration((total - self.done) as f64 / rate)
                    )),
                    _ => line.push_str(", eta ?"),
                }
            }
        }
        if !self.status.is_empty() {
            line.push_str(&format!(" ({})", self.status));
        }
        line
    }
}

fn interval() -> Duration {
    std::env::var(INTERVAL_ENV)
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map_or(Duration::from_secs(10), Duration::from_secs_f64)
}

impl RunProgress {
    pub fn new() -> Self {
        let terminal = std::io::stderr().is_terminal();
        let bars = terminal.then(|| (MultiProgress::new(), Mutex::new(HashMap::new())));
        let running: Arc<Mutex<BTreeMap<String, Running>>> = Arc::default();
        let t0 = Instant::now();
        let ticker = (!terminal).then(|| {
            let (stop, wake) = std::sync::mpsc::channel::<()>();
            let running = Arc::clone(&running);
            let every = interval();
            let handle = std::thread::spawn(move || {
                loop {
                    match wake.recv_timeout(every) {
                        Err(RecvTimeoutError::Timeout) => {}
                        _ => return,
                    }
                    let now = Instant::now();
                    let lines: Vec<String> = lock(&running)
                        .iter()
                        .map(|(stage, r)| r.line(stage, now))
                        .collect();
                    for line in lines {
                        println!("[{:>7.1}s]        {line}", t0.elapsed().as_secs_f64());
                    }
                }
            });
            (stop, handle)
        });
        RunProgress {
            bars,
            running,
            ticker,
            t0,
        }
    }

    fn line(&self, text: String) {
        match &self.bars {
            Some((multi, _)) => {
                let _ = multi.println(text);
            }
            None => println!("[{:>7.1}s] {text}", self.t0.elapsed().as_secs_f64()),
        }
    }
}

impl Drop for RunProgress {
    fn drop(&mut self) {
        if let Some((stop, handle)) = self.ticker.take() {
            let _ = stop.send(());
            let _ = handle.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `12345678` as `12,345,678`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn rate_text(rate: f64) -> String {
    if rate >= 100.0 {
        thousands(rate.round() as u64)
    } else if rate >= 1.0 {
        format!("{rate:.1}")
    } else {
        format!("{rate:.3}")
    }
}

/// `75.3` seconds as `1m15s`.
fn human_duration(secs: f64) -> String {
    let s = secs.round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

impl Observer for RunProgress {
    fn started(&self, stage: &str, why: &str) {
        if let Some((multi, bars)) = &self.bars {
            let bar = multi.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} {prefix:16} [{bar:30}] {pos}/{len} {msg} {per_sec} eta {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_prefix(stage.to_string());
            bar.enable_steady_tick(Duration::from_millis(120));
            lock(bars).insert(stage.to_string(), bar);
        } else {
            lock(&self.running).insert(
                stage.to_string(),
                Running {
                    started: Instant::now(),
                    done: 0,
                    total: None,
                    unit: String::new(),
                    since: None,
                    status: String::new(),
                },
            );
        }
        self.line(format!("start  {stage}: {why}"));
    }

    fn progress(&self, stage: &str, done: u64, total: Option<u64>, unit: &str) {
        if let Some((_, bars)) = &self.bars
            && let Some(bar) = lock(bars).get(stage)
        {
            if let Some(total) = total {
                bar.set_length(total);
            }
            bar.set_position(done);
            bar.set_message(unit.to_string());
        }
        if let Some(r) = lock(&self.running).get_mut(stage) {
            if r.unit != unit || r.total != total {
                r.unit = unit.to_string();
                r.total = total;
                r.since = None;
            }
            r.done = done;
            // The first count of a unit may be work an earlier attempt did (finished
            // shards): the rate starts from it.
            r.since.get_or_insert((Instant::now(), done));
        }
    }

    fn status(&self, stage: &str, text: &str) {
        if let Some((_, bars)) = &self.bars
            && let Some(bar) = lock(bars).get(stage)
        {
            bar.set_message(text.to_string());
        }
        if let Some(r) = lock(&self.running).get_mut(stage) {
            r.status = text.to_string();
        }
    }

    fn log(&self, stage: &str, text: &str) {
        self.line(format!("       {stage}: {text}"));
    }

    fn finished(&self, stage: &str, outcome: &Outcome) {
        if let Some((_, bars)) = &self.bars
            && let Some(bar) = lock(bars).remove(stage)
        {
            bar.finish_and_clear();
        }
        lock(&self.running).remove(stage);
        let detail = match outcome {
            Outcome::Ran { seconds, .. } => format!("in {seconds:.2}s"),
            Outcome::Failed(e) => format!("\n{e}"),
            other => other.label().to_string(),
        };
        self.line(format!("{:<6} {stage} {detail}", outcome.label()));
    }
}

/// The table printed at the end of a run.
pub fn summary_table(summary: &RunSummary) -> String {
    let mut rows = vec![[
        "STAGE".to_string(),
        "RESULT".into(),
        "TIME".into(),
        "DETAIL".into(),
    ]];
    for (stage, outcome) in &summary.stages {
        let (time, detail) = match outcome {
            Outcome::Ran {
                seconds,
                counts,
                shards_resumed,
            } => {
                let mut parts: Vec<String> = counts
                    .iter()
                    .filter(|(_, v)| v.is_number() || v.is_string())
                    .take(6)
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                if *shards_resumed > 0 {
                    parts.push(format!("resumed after {shards_resumed} finished shard(s)"));
                }
                (format!("{seconds:.2}s"), parts.join(" "))
            }
            Outcome::Failed(e) => (String::new(), e.lines().next().unwrap_or("").to_string()),
            Outcome::Blocked(why) | Outcome::WouldRun(why) => (String::new(), why.clone()),
            Outcome::Fresh | Outcome::Skipped => (String::new(), String::new()),
        };
        rows.push([stage.clone(), outcome.label().into(), time, detail]);
    }
    crate::table(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(done: u64, total: Option<u64>, status: &str, t0: Instant) -> Running {
        Running {
            started: t0,
            done,
            total,
            unit: "documents".into(),
            since: Some((t0 + Duration::from_secs(10), 1_000)),
            status: status.into(),
        }
    }

    #[test]
    fn a_line_gives_count_rate_and_eta_from_this_attempts_work() {
        let t0 = Instant::now();
        let now = t0 + Duration::from_secs(30);
        // 4,000 documents in the 20 s since the first count (1,000 were an earlier
        // attempt's): 200/s, and 5,000 to go take 25 s.
        let line = running(5_000, Some(10_000), "scoring `base`", t0).line("evaluate", now);
        assert_eq!(
            line,
            "evaluate: running 30s, 5,000/10,000 documents, 200 documents/s, eta 25s (scoring `base`)"
        );
        let done = running(10_000, Some(10_000), "learning merges", t0).line("tokenizer", now);
        assert_eq!(
            done,
            "tokenizer: running 30s, 10,000/10,000 documents done (learning merges)"
        );
        let open = running(5_000, None, "", t0).line("ingest", now);
        assert_eq!(
            open,
            "ingest: running 30s, 5,000 documents, 200 documents/s, eta ?"
        );
        assert_eq!(human_duration(3725.0), "1h02m");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
