//! Open chunk files, bounded: a store may hold thousands of chunks, far more
//! than a process may keep open (1024 descriptors is a common soft limit).
//! Handles are opened on first use and the least recently used one is closed
//! past `open_chunks_max`. A reader that holds a handle keeps it valid even
//! after eviction or after the chunk is deleted (the inode lives on).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::error::Result;
use crate::io::{IoBackend, IoFile, OpenMode};
use crate::types::ChunkId;

#[derive(Debug, Default)]
struct Inner {
    files: HashMap<ChunkId, (Arc<dyn IoFile>, u64)>,
    tick: u64,
    opens: u64,
    evictions: u64,
}

#[derive(Debug)]
pub struct FdCache {
    io: Arc<dyn IoBackend>,
    cap: usize,
    inner: Mutex<Inner>,
}

impl FdCache {
    pub fn new(io: Arc<dyn IoBackend>, cap: usize) -> FdCache {
        FdCache {
            io,
            cap: cap.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The open handle of chunk `id` at `path`, opening it if needed.
    pub fn get(&self, id: ChunkId, path: &Path) -> Result<Arc<dyn IoFile>> {
        let mut g = self.lock();
        g.tick += 1;
        let tick = g.tick;
        if let Some(e) = g.files.get_mut(&id) {
            e.1 = tick;
            return Ok(e.0.clone());
        }
        let file = self.io.open(path, OpenMode::ReadOnly)?;
        g.opens += 1;
        self.insert_locked(&mut g, id, file.clone());
        Ok(file)
    }

    /// Keeps a handle that is already open (a chunk just written).
    pub fn insert(&self, id: ChunkId, file: Arc<dyn IoFile>) {
        let mut g = self.lock();
        g.tick += 1;
        self.insert_locked(&mut g, id, file);
    }

    fn insert_locked(&self, g: &mut Inner, id: ChunkId, file: Arc<dyn IoFile>) {
        while g.files.len() >= self.cap {
            let oldest = g.files.iter().min_by_key(|(_, (_, t))| *t).map(|(k, _)| *k);
            match oldest {
                Some(k) => {
                    g.files.remove(&k);
                    g.evictions += 1;
                }
                None => break,
            }
        }
        let tick = g.tick;
        g.files.insert(id, (file, tick));
    }

    /// Forgets a deleted chunk.
    pub fn remove(&self, id: ChunkId) {
        self.lock().files.remove(&id);
    }

    /// (open handles, opens, evictions)
    pub fn counters(&self) -> (usize, u64, u64) {
        let g = self.lock();
        (g.files.len(), g.opens, g.evictions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::sim::SimFs;

    #[test]
    fn stays_within_its_bound_and_reuses_handles() {
        let fs = SimFs::new();
        fs.create_dir_all(Path::new("/c")).unwrap();
        for i in 0..10 {
            fs.open(Path::new(&format!("/c/{i}")), OpenMode::CreateNew)
                .unwrap();
        }
        let cache = FdCache::new(Arc::new(fs), 3);
        for round in 0..3 {
            for i in 0..10u64 {
                cache
                    .get(ChunkId(i), Path::new(&format!("/c/{i}")))
                    .unwrap();
                assert!(cache.counters().0 <= 3, "round {round}");
            }
        }
        let (_, opens, _) = cache.counters();
        cache.get(ChunkId(9), Path::new("/c/9")).unwrap();
        assert_eq!(cache.counters().1, opens, "a cached handle is reused");
    }
}
