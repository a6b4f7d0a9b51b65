//! Fault injection, for the reliability tests: named points in the code where a test
//! can make the process die, panic or misbehave at an exact moment instead of racing
//! a timer.
//!
//! `DAPT_FAULT` holds comma-separated rules `POINT[/STAGE][#N]=ACTION`:
//! - `POINT` is a name passed to [`hit`] (`shard-done`: a shard or checkpoint marked
//!   finished, counted over the whole process; `manifest-commit`,
//!   `parquet-finish`, `checkpoint-write`, `lock-handover`, `kind-run`,
//!   `drop-document`, …: `grep -rn 'fault::hit'` lists them);
//! - `/STAGE` limits the rule to one stage (points outside a stage have stage `""`);
//! - `#N` fires on the N-th time this process reaches the point (default: the first);
//!   `#N+` fires on the N-th and every later time;
//! - `ACTION` is `abort` (the process dies at once, with no cleanup, like SIGKILL),
//!   `panic`, or `fire`, which only makes [`hit`] return `true` so the caller
//!   misbehaves on purpose (e.g. `drop-document` drops one document, to prove the
//!   conservation check catches it).
//!
//! Without `DAPT_FAULT` every point is one environment lookup, cached.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    Abort,
    Panic,
    Fire,
}

#[derive(Debug, Clone)]
struct Rule {
    point: String,
    stage: Option<String>,
    nth: u64,
    and_later: bool,
    action: Action,
}

fn rules() -> &'static [Rule] {
    static RULES: OnceLock<Vec<Rule>> = OnceLock::new();
    RULES.get_or_init(|| {
        std::env::var("DAPT_FAULT")
            .map(|spec| parse(&spec).unwrap_or_else(|e| panic!("DAPT_FAULT: {e}")))
            .unwrap_or_default()
    })
}

fn parse(spec: &str) -> Result<Vec<Rule>, String> {
    spec.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|rule| {
            let (target, action) = rule
                .split_once('=')
                .ok_or_else(|| format!("`{rule}` has no `=ACTION`"))?;
            let action = match action {
                "abort" => Action::Abort,
                "panic" => Action::Panic,
                "fire" => Action::Fire,
                other => return Err(format!("unknown action `{other}` in `{rule}`")),
            };
            let (target, nth, and_later) = match target.split_once('#') {
                Some((t, n)) => {
                    let (n, later) = n.strip_suffix('+').map_or((n, false), |n| (n, true));
                    let n: u64 = n
                        .parse()
                        .map_err(|_| format!("`#{n}` in `{rule}` is not a count"))?;
                    (t, n.max(1), later)
                }
                None => (target, 1, false),
            };
            let (point, stage) = match target.split_once('/') {
                Some((p, s)) => (p, Some(s.to_string())),
                None => (target, None),
            };
            Ok(Rule {
                point: point.to_string(),
                stage,
                nth,
                and_later,
                action,
            })
        })
        .collect()
}

/// Reports that the process reached fault point `point` while running `stage` (`""`
/// outside a stage). Aborts or panics if a rule says so; returns `true` if a `fire`
/// rule matches this visit.
pub fn hit(point: &str, stage: &str) -> bool {
    let rules = rules();
    if rules.is_empty() {
        return false;
    }
    static VISITS: OnceLock<Mutex<HashMap<(String, String), u64>>> = OnceLock::new();
    let visit = {
        let mut visits = VISITS
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let n = visits
            .entry((point.to_string(), stage.to_string()))
            .or_insert(0);
        *n += 1;
        *n
    };
    let mut fired = false;
    for rule in rules {
        let stage_matches = rule.stage.as_deref().is_none_or(|s| s == stage);
        let count_matches = visit == rule.nth || (rule.and_later && visit > rule.nth);
        if rule.point != point || !stage_matches || !count_matches {
            continue;
        }
        match rule.action {
            Action::Abort => std::process::abort(),
            Action::Panic => panic!("injected fault at `{point}` in stage `{stage}`"),
            Action::Fire => fired = true,
        }
    }
    fired
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_with_stage_count_and_action() {
        let rules =
            parse("manifest-commit/base#2=abort, kind-run=panic,drop-document#3+=fire").unwrap();
        assert_eq!(rules.len(), 3);
        assert_eq!(rules[0].point, "manifest-commit");
        assert_eq!(rules[0].stage.as_deref(), Some("base"));
        assert_eq!((rules[0].nth, rules[0].and_later), (2, false));
        assert_eq!(rules[0].action, Action::Abort);
        assert_eq!(rules[1].stage, None);
        assert_eq!(rules[1].action, Action::Panic);
        assert_eq!((rules[2].nth, rules[2].and_later), (3, true));
        assert!(parse("x=explode").unwrap_err().contains("explode"));
        assert!(parse("x#y=abort").unwrap_err().contains("#y"));
        assert!(parse("x").unwrap_err().contains("no `=ACTION`"));
    }
}
