//! How a run looks: an indicatif bar per running stage on a terminal, plain log
//! lines otherwise, and the final table.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dapt_dag::{Observer, Outcome, RunSummary};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

pub struct RunProgress {
    bars: Option<(MultiProgress, Mutex<HashMap<String, ProgressBar>>)>,
    t0: Instant,
}

impl RunProgress {
    pub fn new() -> Self {
        let bars = std::io::stderr()
            .is_terminal()
            .then(|| (MultiProgress::new(), Mutex::new(HashMap::new())));
        RunProgress {
            bars,
            t0: Instant::now(),
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
            bars.lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(stage.to_string(), bar);
        }
        self.line(format!("start  {stage}: {why}"));
    }

    fn progress(&self, stage: &str, done: u64, total: Option<u64>, unit: &str) {
        if let Some((_, bars)) = &self.bars
            && let Some(bar) = bars.lock().unwrap_or_else(|e| e.into_inner()).get(stage)
        {
            if let Some(total) = total {
                bar.set_length(total);
            }
            bar.set_position(done);
            bar.set_message(unit.to_string());
        }
    }

    fn status(&self, stage: &str, text: &str) {
        if let Some((_, bars)) = &self.bars
            && let Some(bar) = bars.lock().unwrap_or_else(|e| e.into_inner()).get(stage)
        {
            bar.set_message(text.to_string());
        }
    }

    fn log(&self, stage: &str, text: &str) {
        self.line(format!("       {stage}: {text}"));
    }

    fn finished(&self, stage: &str, outcome: &Outcome) {
        if let Some((_, bars)) = &self.bars
            && let Some(bar) = bars.lock().unwrap_or_else(|e| e.into_inner()).remove(stage)
        {
            bar.finish_and_clear();
        }
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
