//! `PRAGMA bop_stats`: one line of `key=value` pairs separated by spaces.
//! The engine's part (the store's counters, its record log, WAL image,
//! page store, manifest, cache and I/O) is formatted here, once; a front
//! end appends its own counters (the VFS: its checkpoint policy). Every key
//! name is part of bop's interface (tests and tools parse them).

use bop_storage::StoreStats;

/// The `PRAGMA bop_stats` line of a store with statistics `s`, followed by
/// the front end's own counters in order.
pub fn bop_stats(s: &StoreStats, front_end: &[(&str, u64)]) -> String {
    let mut out = engine_stats(s);
    out.push_str(&flush_stats(s));
    out.push_str(&manifest_stats(s));
    for (key, value) in front_end {
        out.push_str(&format!(" {key}={value}"));
    }
    out
}

/// The store's own counters: WAL image, record log, page store.
fn engine_stats(s: &StoreStats) -> String {
    format!(
        "records={} record_bytes={} wal_sync_calls={} generations={} generations_retained={} \
     retained_bytes={} pending_bytes_peak={} \
     log_segments={} segments_created={} segments_recycled={} segments_prepared={} \
     segment_indexes_written={} segments_indexed_at_open={} recovery_bytes_scanned={} records_skipped_at_open={} \
     records_verified_on_first_read={} frames_cached_at_commit={} \
     wal_frame_cache_hits={} wal_image_records={} \
     wal_image_frames={} next_lsn={} durable_lsn={} \
     db_pages={} chunks={} pending_pages={} pages_compacted={} chunks_deleted={} \
     chunks_written={} chunk_dir_syncs={} chunk_files_open={} chunk_file_opens={} chunk_file_evictions={} \
     publishes_deferred={}",
        s.wal_image.records,
        s.wal_image.record_bytes,
        s.wal_image.sync_calls,
        s.wal_image.generations,
        s.wal_image.generations_retained,
        s.wal_image.retained_bytes,
        s.wal_image.pending_bytes_peak,
        s.log_segments,
        s.log.segments_created,
        s.log.segments_recycled,
        s.log.segments_prepared,
        s.log.segment_indexes_written,
        s.log.segments_indexed_at_open,
        s.log.recovery_bytes_scanned,
        s.log.records_skipped_at_open,
        bop_storage::log::lazy_verifications(),
        s.wal_image.frames_cached_at_commit,
        bop_storage::wal_image::frame_cache_hits(),
        s.wal_image_records,
        s.wal_image_frames,
        s.next_lsn,
        s.durable_lsn,
        s.pages.db_pages,
        s.pages.chunks,
        s.pages.pending_pages,
        s.pages.pages_compacted,
        s.pages.chunks_deleted,
        s.pages.chunks_written,
        s.pages.chunk_dir_syncs,
        s.pages.chunk_files_open,
        s.pages.chunk_file_opens,
        s.pages.chunk_file_evictions,
        s.pages.publishes_deferred
    )
}

/// The manifest's part of `PRAGMA bop_stats`: change log, cursors (each
/// as `cursor.<name>.lag`, with `.lagged=1` when it fell behind the bound),
/// journal, map, whether the previous open ended cleanly, and the files the
/// sweeps at open still found (the journal's replay should leave none).
fn manifest_stats(s: &StoreStats) -> String {
    let m = &s.manifest;
    // Process-wide: stores kept open after their last close, and opens
    // that found one (`close_grace_ms`).
    let (lingering, revivals) = bop_storage::linger::stats();
    let mut out = format!(
        " manifest_format={} manifest_upgraded_from={} previous_shutdown_clean={} \
         change_log_entries={} change_first_seq={} change_last_seq={} changes_appended={} \
         changes_truncated={} cursors={} cursors_lagged={} cursor_lag_events={} \
         journal_pending={} journal_written={} journal_settled={} journal_replayed={} \
         journal_files_removed={} manifest_map_bytes={} manifest_map_grows={} \
         manifest_commits={} stray_chunks_removed={} log_stray_segments_removed={} \
         stores_lingering={} store_revivals={}",
        m.format_version,
        m.upgraded_from,
        u8::from(m.previous_shutdown_clean),
        m.change_log_entries,
        m.change_first_seq,
        m.change_last_seq,
        m.changes_appended,
        m.changes_truncated,
        m.cursors.len(),
        m.cursors_lagged,
        m.cursor_lag_events,
        m.journal_pending,
        m.journal_written,
        m.journal_settled,
        m.journal_replayed,
        m.journal_files_removed,
        m.map_size_bytes,
        m.map_grows,
        m.commits,
        s.pages.stray_chunks_removed,
        s.log_stray_segments_removed,
        lingering,
        revivals,
    );
    for c in &m.cursors {
        out.push_str(&format!(" cursor.{}.lag={}", c.name, c.lag));
        if c.lagged {
            out.push_str(&format!(" cursor.{}.lagged=1", c.name));
        }
    }
    out
}

/// The record log's flush pipeline's part of `PRAGMA bop_stats`: I/O
/// backend, watermarks, bounds, retries, panics, latency percentiles, and
/// the process-wide I/O and page-cache counters.
fn flush_stats(s: &StoreStats) -> String {
    let f = &s.flush;
    let mut out = format!(
        " io_backend={} written_lsn={} unsynced_bytes={} unsynced_bytes_peak={} log_buffer_bytes={} \
         log_syncs={} sync_errors={} sync_retries={} background_flushes={} flush_requests={} flush_queue_full={} \
         backpressure_waits={} backpressure_rejections={} large_records={} worker_panics={}",
        s.io_backend,
        f.written_lsn,
        f.unsynced_bytes,
        f.unsynced_bytes_peak,
        f.buffer_bytes,
        f.syncs,
        f.sync_errors,
        f.sync_retries,
        f.background_flushes,
        f.background_requests,
        f.background_queue_full,
        f.backpressure_waits,
        f.backpressure_rejections,
        f.large_records,
        f.worker_panics,
    );
    for (name, h) in [
        ("append", &f.append),
        ("write", &f.write),
        ("sync", &f.sync),
        ("commit", &f.commit),
    ] {
        out.push(' ');
        out.push_str(&h.render(name));
    }
    let io = bop_storage::io_stats();
    out.push_str(&format!(
        " io_direct_writes={} io_rmw_writes={} io_bounce_allocs_over_pool={} io_direct_fallbacks={} \
         io_uring_submissions={} io_uring_fallbacks={} log_base_min={}",
        io.direct_writes,
        io.rmw_writes,
        io.bounce_allocs_over_pool,
        io.direct_fallbacks,
        io.uring_submissions,
        io.uring_fallbacks,
        s.log_base_min,
    ));
    let c = &s.cache;
    out.push_str(&format!(
        " cache_capacity_bytes={} cache_bytes={} cache_entries={} cache_hits={} cache_misses={} \
         cache_inserts={} cache_evictions={} cache_removals={} cache_scan_skips={}",
        c.capacity_bytes,
        c.bytes,
        c.entries,
        c.hits,
        c.misses,
        c.inserts,
        c.evictions,
        c.removals,
        c.scan_skips,
    ));
    if let Some(p) = &f.last_panic {
        out.push_str(&format!(" last_panic={p:?}", p = p.to_string()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key, in order: they are bop's interface, renamed only on
    /// purpose (and then documented).
    const KEYS: &str = "records record_bytes wal_sync_calls generations generations_retained \
        retained_bytes pending_bytes_peak \
        log_segments segments_created segments_recycled segments_prepared \
        segment_indexes_written segments_indexed_at_open recovery_bytes_scanned \
        records_skipped_at_open records_verified_on_first_read frames_cached_at_commit \
        wal_frame_cache_hits wal_image_records wal_image_frames next_lsn durable_lsn \
        db_pages chunks pending_pages pages_compacted chunks_deleted chunks_written \
        chunk_dir_syncs chunk_files_open \
        chunk_file_opens chunk_file_evictions publishes_deferred \
        io_backend written_lsn unsynced_bytes unsynced_bytes_peak log_buffer_bytes log_syncs \
        sync_errors sync_retries background_flushes flush_requests flush_queue_full \
        backpressure_waits backpressure_rejections large_records worker_panics \
        append_count append_p50_us append_p99_us append_p999_us append_max_us \
        write_count write_p50_us write_p99_us write_p999_us write_max_us \
        sync_count sync_p50_us sync_p99_us sync_p999_us sync_max_us \
        commit_count commit_p50_us commit_p99_us commit_p999_us commit_max_us \
        io_direct_writes io_rmw_writes io_bounce_allocs_over_pool io_direct_fallbacks \
        io_uring_submissions io_uring_fallbacks log_base_min \
        cache_capacity_bytes cache_bytes cache_entries cache_hits cache_misses cache_inserts \
        cache_evictions cache_removals cache_scan_skips \
        manifest_format manifest_upgraded_from previous_shutdown_clean change_log_entries \
        change_first_seq change_last_seq changes_appended changes_truncated cursors \
        cursors_lagged cursor_lag_events journal_pending journal_written journal_settled \
        journal_replayed journal_files_removed manifest_map_bytes manifest_map_grows \
        manifest_commits stray_chunks_removed log_stray_segments_removed \
        stores_lingering store_revivals front_a front_b";

    #[test]
    fn keys_are_stable_and_the_front_end_counters_come_last() {
        let line = bop_stats(&StoreStats::default(), &[("front_a", 1), ("front_b", 22)]);
        let keys: Vec<&str> = line
            .split(' ')
            .map(|kv| kv.split_once('=').expect("key=value").0)
            .collect();
        assert_eq!(keys, KEYS.split_whitespace().collect::<Vec<_>>(), "{line}");
        assert!(line.ends_with(" front_a=1 front_b=22"), "{line}");
    }
}
