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
    /// Direct I/O for the record log's segments ([`DirectBackend`]).
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
/// a log segment whose filesystem refuses direct I/O.
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
    env_mode().unwrap_or_else(|e| panic!("{e}"))
}

/// The mode `BOP_IO` selects, or a clear configuration error if it is
/// invalid (front ends check this before building default options, so a
/// bad `BOP_IO` fails an open with a message instead of a panic).
pub fn env_mode() -> Result<IoMode> {
    match std::env::var("BOP_IO") {
        Ok(v) if !v.trim().is_empty() => v.parse().map_err(|e: StorageError| {
            StorageError::Config(format!("BOP_IO={v:?} is invalid: {e}"))
        }),
        Ok(_) | Err(std::env::VarError::NotPresent) => Ok(DEFAULT_IO_MODE),
        Err(std::env::VarError::NotUnicode(v)) => Err(StorageError::Config(format!(
            "BOP_IO={v:?} is invalid: not UTF-8; expected one of: {IO_MODES_DOC}"
        ))),
    }
}

/// The backend `BOP_IO` selects (default: `direct`, that is direct I/O for
/// the record log where the filesystem supports it). Panics on an invalid
/// `BOP_IO`, see [`default_mode`].
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
        // io_uring works where the suite runs: no fallback to std.
        assert_eq!(u.name(), "uring");
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

    /// Latency of a 4 KiB durable overwrite of a preallocated, zero-filled
    /// file, per method; medians over 2,000 iterations (sequential offsets,
    /// like appends to the record log). Run with
    /// `BOP_BENCH_DIR=<dir on the disk to measure> cargo test --release -p
    /// bop-storage durable_write_latency -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn durable_write_latency() {
        use crate::io::aligned::AlignedBuf;
        use crate::io::OpenMode;
        use std::os::unix::fs::OpenOptionsExt;
        use std::os::unix::io::AsRawFd;
        use std::time::Instant;

        const FILE: u64 = 8 << 20;
        const N: usize = 2000;
        let base = std::env::var("BOP_BENCH_DIR").unwrap_or_else(|_| ".".into());
        let dir = tempfile::tempdir_in(base).unwrap();
        let make = |name: &str| {
            let p = dir.path().join(name);
            let f = StdBackend.open(&p, OpenMode::CreateNew).unwrap();
            f.allocate(FILE).unwrap();
            let zeros = vec![0u8; 1 << 20];
            for at in (0..FILE).step_by(zeros.len()) {
                f.write_all_at(&zeros, at).unwrap();
            }
            f.sync_data().unwrap();
            p
        };
        let mut buf = AlignedBuf::zeroed(4096);
        buf.fill(0x5a);
        let buf = &buf;
        let direct = DirectBackend::new(DirectMode::Required);
        let d1 = direct.open_log(&make("d1"), OpenMode::Existing).unwrap();
        let d2 = direct.open_log(&make("d2"), OpenMode::Existing).unwrap();
        assert_eq!(d1.write_alignment(), 4096);
        let raw = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(make("d3"))
            .unwrap();
        let b1 = StdBackend.open(&make("b1"), OpenMode::Existing).unwrap();
        type Op<'a> = (&'static str, Box<dyn FnMut(u64) + 'a>);
        let mut ops: Vec<Op> = vec![
            (
                "O_DIRECT write (no sync)",
                Box::new(|at| d1.write_all_at(buf, at).unwrap()),
            ),
            (
                "O_DIRECT write + fdatasync",
                Box::new(|at| d2.write_durable_at(buf, at).unwrap()),
            ),
            (
                "O_DIRECT pwritev2(RWF_DSYNC)",
                Box::new(|at| {
                    let iov = libc::iovec {
                        iov_base: buf.as_ptr() as *mut libc::c_void,
                        iov_len: buf.len(),
                    };
                    // SAFETY: `iov` points at `buf`, alive and not written
                    // during the call; the descriptor is open.
                    let n = unsafe {
                        libc::pwritev2(raw.as_raw_fd(), &iov, 1, at as libc::off_t, libc::RWF_DSYNC)
                    };
                    assert_eq!(n, 4096, "{}", std::io::Error::last_os_error());
                }),
            ),
            (
                "buffered write + fdatasync",
                Box::new(|at| b1.write_durable_at(buf, at).unwrap()),
            ),
        ];
        let uring = UringBackend::new();
        let (u1, u2) = match &uring {
            Ok(u) => (
                Some(u.open(&make("u1"), OpenMode::Existing).unwrap()),
                Some(u.open(&make("u2"), OpenMode::Existing).unwrap()),
            ),
            Err(e) => {
                println!("io_uring unavailable: {e}");
                (None, None)
            }
        };
        if let (Some(u1), Some(u2)) = (u1, u2) {
            ops.push((
                "io_uring linked write + fdatasync",
                Box::new(move |at| u1.write_durable_at(buf, at).unwrap()),
            ));
            ops.push((
                "io_uring write, then fdatasync",
                Box::new(move |at| {
                    u2.write_all_at(buf, at).unwrap();
                    u2.sync_data().unwrap()
                }),
            ));
        }
        // Interleaved (each iteration runs every method once), so a change
        // of load during the run hits all methods alike.
        let mut times = vec![Vec::with_capacity(N); ops.len()];
        for i in 0..(100 + N) as u64 {
            let at = (i * 4096) % FILE;
            for (k, (_, op)) in ops.iter_mut().enumerate() {
                let s = Instant::now();
                op(at);
                if i >= 100 {
                    times[k].push(s.elapsed().as_nanos() as u64);
                }
            }
        }
        for ((label, _), t) in ops.iter().zip(times.iter_mut()) {
            t.sort_unstable();
            let q = |p: usize| t[(t.len() * p / 100).min(t.len() - 1)] as f64 / 1000.0;
            println!(
                "{label:<36} median {:>7.1} us  p10 {:>7.1}  p90 {:>7.1}  p99 {:>7.1}",
                q(50),
                q(10),
                q(90),
                q(99)
            );
        }
    }
}
