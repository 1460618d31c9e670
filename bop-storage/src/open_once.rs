//! A process-wide map from a path to the one live object opened for it,
//! where opening one path never waits for another path's open (each path
//! has its own slot lock; the map lock is held only to find the slot).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

type Slot<T> = Arc<Mutex<Weak<T>>>;

#[derive(Debug)]
pub struct OpenOnce<T> {
    slots: Mutex<HashMap<PathBuf, Slot<T>>>,
}

impl<T> Default for OpenOnce<T> {
    fn default() -> Self {
        OpenOnce {
            slots: Mutex::new(HashMap::new()),
        }
    }
}

impl<T> OpenOnce<T> {
    fn slot(&self, key: &Path) -> Slot<T> {
        let mut m = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        // Forget slots nobody holds whose object is gone (try_lock: never
        // wait for an open in progress while holding the map).
        m.retain(|_, s| {
            Arc::strong_count(s) > 1 || s.try_lock().map(|w| w.strong_count() > 0).unwrap_or(true)
        });
        m.entry(key.to_path_buf()).or_default().clone()
    }

    /// The live object for `key`, if any.
    pub fn get(&self, key: &Path) -> Option<Arc<T>> {
        let slot = self
            .slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()?;
        let g = slot.lock().unwrap_or_else(|p| p.into_inner());
        g.upgrade()
    }

    /// The live object for `key`, opening it with `open` if there is none.
    /// Concurrent callers for the same key wait for one open; callers for
    /// other keys do not wait at all.
    pub fn get_or_open<E>(
        &self,
        key: &Path,
        open: impl FnOnce() -> Result<Arc<T>, E>,
    ) -> Result<Arc<T>, E> {
        let slot = self.slot(key);
        let mut g = slot.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = g.upgrade() {
            return Ok(t);
        }
        let t = open()?;
        *g = Arc::downgrade(&t);
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_object_per_key_and_gone_when_dropped() {
        let m: OpenOnce<u32> = OpenOnce::default();
        let a = m
            .get_or_open::<()>(Path::new("/a"), || Ok(Arc::new(1)))
            .unwrap();
        let again = m
            .get_or_open::<()>(Path::new("/a"), || Ok(Arc::new(2)))
            .unwrap();
        assert!(Arc::ptr_eq(&a, &again));
        assert!(m.get(Path::new("/b")).is_none());
        drop((a, again));
        assert!(m.get(Path::new("/a")).is_none());
        let b = m
            .get_or_open::<()>(Path::new("/a"), || Ok(Arc::new(3)))
            .unwrap();
        assert_eq!(*b, 3);
        assert!(m.get_or_open(Path::new("/c"), || Err("no")).is_err());
    }
}
