//! Panics caught at the stage boundary: a panic inside a stage kind (a shape error in
//! burn, a bug in a reader) fails that stage alone, with its message and location in
//! `failed.json`, instead of taking down the run and the stages beside it.
//!
//! A panic's payload carries its message but not its location, and a panic on a
//! worker thread reaches the stage's thread re-raised (rayon resumes the payload;
//! `std::thread::scope` raises a new one). So a panic hook records every panic's
//! message and location as it happens; [`describe`] matches a caught payload to the
//! newest record with the same message, or, for a scope's generic re-raise, to the
//! newest record of any other message.

use std::any::Any;
use std::collections::VecDeque;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Mutex, Once};

/// How many recent panics are remembered (a stage rarely has more than one).
const REMEMBERED: usize = 64;

/// The message `std::thread::scope` panics with when a scoped thread panicked.
const SCOPE_REPANIC: &str = "a scoped thread panicked";

static RECENT: Mutex<VecDeque<(String, String)>> = Mutex::new(VecDeque::new());

/// Installs the recording hook once (the previous hook still runs, so the panic is
/// printed as usual and `RUST_BACKTRACE` still works).
pub fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let location = info
                .location()
                .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
                .unwrap_or_else(|| "an unknown location".into());
            let message = payload_message(info.payload());
            let mut recent = RECENT.lock().unwrap_or_else(|e| e.into_inner());
            if recent.len() == REMEMBERED {
                recent.pop_front();
            }
            recent.push_back((message, location));
            drop(recent);
            previous(info);
        }));
    });
}

/// Runs `f`, turning a panic into `Err("panicked at FILE:LINE:COL: MESSAGE")`.
pub fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    install_hook();
    panic::catch_unwind(AssertUnwindSafe(f)).map_err(|payload| describe(payload.as_ref()))
}

/// `panicked at LOCATION: MESSAGE` for a caught panic's payload.
pub fn describe(payload: &(dyn Any + Send)) -> String {
    let message = payload_message(payload);
    let recent = RECENT.lock().unwrap_or_else(|e| e.into_inner());
    let found = recent
        .iter()
        .rev()
        .find(|(m, _)| *m == message)
        .filter(|_| message != SCOPE_REPANIC)
        .or_else(|| recent.iter().rev().find(|(m, _)| m != SCOPE_REPANIC));
    match found {
        Some((original, location)) => format!("panicked at {location}: {original}"),
        None => format!("panicked: {message}"),
    }
}

fn payload_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a panic without a message)".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caught_panic_names_its_message_and_location_even_from_a_scoped_thread() {
        let error = catch(|| -> u32 { panic!("shape mismatch {} vs {}", 3, 4) }).unwrap_err();
        assert!(error.contains("shape mismatch 3 vs 4"), "{error}");
        assert!(error.contains("panics.rs:"), "{error}");
        assert_eq!(catch(|| 7).unwrap(), 7);

        // One test, not two: the record of recent panics is process-wide.
        let error = catch(|| {
            std::thread::scope(|s| {
                s.spawn(|| panic!("worker {} failed", 2));
            })
        })
        .unwrap_err();
        assert!(error.contains("worker 2 failed"), "{error}");
        assert!(error.contains("panics.rs:"), "{error}");
    }
}
