//! The failed state of a store, shared by every part that can fail it (the
//! write path, the flush controller and its workers).
//!
//! Once set it stays set until the store is reopened: the store refuses
//! writes, and nothing acknowledged is lost because nothing after the
//! failure is acknowledged. The first reason wins.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::error::StorageError;

#[derive(Debug)]
pub struct FailState {
    path: PathBuf,
    /// Set once `reason` is (checked first, so healthy paths take no lock).
    flag: AtomicBool,
    /// The reason and the OS error number behind it, if any.
    reason: Mutex<Option<(String, Option<i32>)>>,
}

impl FailState {
    pub fn new(path: PathBuf) -> FailState {
        FailState {
            path,
            flag: AtomicBool::new(false),
            reason: Mutex::new(None),
        }
    }

    pub fn is_failed(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }

    /// Fails the store unless it already failed (the first reason is kept).
    pub fn set(&self, reason: String, errno: Option<i32>) {
        let mut r = self.reason.lock().unwrap_or_else(|p| p.into_inner());
        if r.is_none() {
            *r = Some((reason, errno));
        }
        self.flag.store(true, Ordering::Release);
    }

    /// `Ok` while healthy; the error every refused write returns otherwise.
    pub fn check(&self) -> Result<(), StorageError> {
        if !self.is_failed() {
            return Ok(());
        }
        match &*self.reason.lock().unwrap_or_else(|p| p.into_inner()) {
            None => Ok(()),
            Some((reason, errno)) => Err(StorageError::Failed {
                path: self.path.clone(),
                reason: reason.clone(),
                errno: *errno,
            }),
        }
    }

    pub fn reason(&self) -> Option<String> {
        self.reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|(r, _)| r.clone())
    }
}
