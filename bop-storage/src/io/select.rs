//! Choosing an I/O backend by name: the `BOP_IO` environment variable and
//! the VFS's `io=` URI parameter use the same syntax, [`IoMode::from_str`].

use std::str::FromStr;
use std::sync::Arc;

use super::{count, DirectBackend, IoBackend, StdBackend, UringBackend, STATS};
use crate::error::{Result, StorageError};

pub use super::direct::DirectMode;
pub use super::{io_stats, IoStats};

/// Which backend to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoMode {
    /// Buffered `pread`/`pwrite`/`fdatasync` ([`StdBackend`]).
    Std,
    /// Direct I/O for WAL segments ([`DirectBackend`]).
    Direct(DirectMode),
    /// io_uring for file data ([`UringBackend`]); std where unavailable.
    Uring,
}

/// The mode names, for error messages and documentation.
pub const IO_MODES_DOC: &str = "std | direct | direct-required | uring";

/// The default where `BOP_IO` is unset: direct I/O where the filesystem
/// supports it.
pub const DEFAULT_IO_MODE: IoMode = IoMode::Direct(DirectMode::Optional);

impl FromStr for IoMode {
    type Err = StorageError;

    /// `std`, `direct` (= direct where supported, buffered elsewhere),
    /// `direct-required` (fail where direct I/O is refused), `uring`.
    fn from_str(s: &str) -> Result<IoMode> {
        match s.trim() {
            "std" => Ok(IoMode::Std),
            "direct" => Ok(IoMode::Direct(DirectMode::Optional)),
            "direct-required" => Ok(IoMode::Direct(DirectMode::Required)),
            "uring" => Ok(IoMode::Uring),
            other => Err(StorageError::Config(format!(
                "unknown I/O mode {other:?}; expected one of: {IO_MODES_DOC}"
            ))),
        }
    }
}

impl std::fmt::Display for IoMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IoMode::Std => "std",
            IoMode::Direct(DirectMode::Optional) => "direct",
            IoMode::Direct(DirectMode::Required) => "direct-required",
            // Never parsed: behaves exactly as std.
            IoMode::Direct(DirectMode::Disabled) => "std",
            IoMode::Uring => "uring",
        })
    }
}

/// A backend for `mode`. `Uring` where io_uring cannot be set up (ENOSYS,
/// EPERM) logs a warning, counts [`IoStats::uring_fallbacks`] and returns
/// the std backend. A `direct-required` backend fails later, at the open of
/// a WAL file whose filesystem refuses direct I/O.
pub fn backend(mode: IoMode) -> Result<Arc<dyn IoBackend>> {
    Ok(match mode {
        IoMode::Std => Arc::new(StdBackend),
        IoMode::Direct(m) => Arc::new(DirectBackend::new(m)),
        IoMode::Uring => match UringBackend::new() {
            Ok(b) => Arc::new(b),
            Err(e) => {
                count(&STATS.uring_fallbacks);
                tracing::warn!(error = %e, "io_uring is not available; using the std backend");
                Arc::new(StdBackend)
            }
        },
    })
}

/// The mode `BOP_IO` names, or [`DEFAULT_IO_MODE`] if it is unset or empty.
///
/// # Panics
///
/// If `BOP_IO` is set to something else than a mode name: a typo in a
/// deployment's or a test matrix's setting must not silently run another
/// backend, and a log line can go unseen where no subscriber is installed.
/// The panic happens at the first store open and says what is wrong (the
/// VFS and the C API turn panics into errors).
pub fn default_mode() -> IoMode {
    match std::env::var("BOP_IO") {
        Ok(v) if !v.trim().is_empty() => match v.parse() {
            Ok(m) => m,
            Err(e) => panic!("BOP_IO={v:?} is invalid: {e}"),
        },
        Ok(_) => DEFAULT_IO_MODE,
        Err(std::env::VarError::NotPresent) => DEFAULT_IO_MODE,
        Err(std::env::VarError::NotUnicode(v)) => {
            panic!("BOP_IO={v:?} is invalid: not UTF-8; expected one of: {IO_MODES_DOC}")
        }
    }
}

/// The backend `BOP_IO` selects (default: `direct`, that is direct I/O for
/// the WAL where the filesystem supports it). Panics on an invalid `BOP_IO`,
/// see [`default_mode`].
pub fn default_backend() -> Arc<dyn IoBackend> {
    // No mode fails at construction (uring falls back to std).
    backend(default_mode()).expect("constructing an I/O backend")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_print() {
        for (s, m) in [
            ("std", IoMode::Std),
            ("direct", IoMode::Direct(DirectMode::Optional)),
            ("direct-required", IoMode::Direct(DirectMode::Required)),
            ("uring", IoMode::Uring),
            (" uring ", IoMode::Uring),
        ] {
            assert_eq!(s.parse::<IoMode>().unwrap(), m);
            assert_eq!(m.to_string(), s.trim());
        }
        for bad in ["", "Direct", "io_uring", "direct-optional"] {
            let e = bad.parse::<IoMode>().unwrap_err();
            assert!(matches!(e, StorageError::Config(_)));
            assert!(e.to_string().contains("direct-required"), "{e}");
        }
    }

    #[test]
    fn backends_have_their_names() {
        assert_eq!(backend(IoMode::Std).unwrap().name(), "std");
        assert_eq!(
            backend(IoMode::Direct(DirectMode::Required))
                .unwrap()
                .name(),
            "direct"
        );
        let u = backend(IoMode::Uring).unwrap();
        assert!(u.name() == "uring" || u.name() == "std");
        assert_eq!(crate::io::sim::SimFs::new().name(), "sim");
        // BOP_IO is read, not written, here (tests run in parallel): the
        // default is whatever the environment of this run says.
        assert_eq!(default_backend().name(), {
            match default_mode() {
                IoMode::Std => "std",
                IoMode::Direct(_) => "direct",
                IoMode::Uring => u.name(),
            }
        });
    }
}
