//! Catching panics with their location and backtrace.
//!
//! A panic inside bop never unwinds into SQLite or kills a worker thread
//! silently: [`catch`] runs a closure and turns a panic into a
//! [`PanicReport`] that says what panicked, where, and the backtrace, so the
//! store can fail safe and report it (in the error the caller sees and in
//! the stats). The location and backtrace come from a panic hook that bop
//! installs once; it records them only for panics inside [`catch`] on the
//! current thread and always calls the hook that was installed before it.

use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;

/// What a caught panic said, where it happened, and the backtrace.
#[derive(Clone, Debug)]
pub struct PanicReport {
    pub message: String,
    /// `file:line:column`, when the hook saw it.
    pub location: Option<String>,
    pub backtrace: Option<String>,
}

impl std::fmt::Display for PanicReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "panic: {}", self.message)?;
        if let Some(loc) = &self.location {
            write!(f, " at {loc}")?;
        }
        Ok(())
    }
}

thread_local! {
    /// How many `catch` frames are active on this thread.
    static CATCHING: Cell<u32> = const { Cell::new(0) };
    static LAST: RefCell<Option<(String, String)>> = const { RefCell::new(None) };
}

fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if CATCHING.with(|c| c.get()) > 0 {
                let location = info
                    .location()
                    .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
                    .unwrap_or_default();
                let backtrace = std::backtrace::Backtrace::force_capture().to_string();
                LAST.with(|l| *l.borrow_mut() = Some((location, backtrace)));
            }
            previous(info);
        }));
    });
}

/// Runs `f`, turning a panic into a report.
pub fn catch<T>(f: impl FnOnce() -> T) -> Result<T, PanicReport> {
    install_hook();
    CATCHING.with(|c| c.set(c.get() + 1));
    let r = catch_unwind(AssertUnwindSafe(f));
    CATCHING.with(|c| c.set(c.get() - 1));
    r.map_err(|payload| {
        let message = crate::error::panic_message(payload.as_ref());
        let (location, backtrace) = LAST
            .with(|l| l.borrow_mut().take())
            .map_or((None, None), |(l, b)| (Some(l), Some(b)));
        PanicReport {
            message,
            location,
            backtrace,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_message_and_location() {
        let r = catch(|| {
            if std::hint::black_box(true) {
                panic!("boom {}", 7);
            }
        })
        .unwrap_err();
        assert_eq!(r.message, "boom 7");
        let loc = r.location.expect("location");
        assert!(loc.contains("panic.rs"), "{loc}");
        assert!(r.backtrace.is_some());
        assert_eq!(catch(|| 5).unwrap(), 5);
    }
}
