//! Damage to a record that a later record proves durable is corruption, not
//! a torn tail: the store refuses to open and names the file and offset.

mod common;
use common::*;

#[test]
fn damaged_durable_record_is_an_error_naming_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    {
        let store = open(&path).unwrap();
        let mut f = 1;
        for i in 0..4u8 {
            f = write_txn(&store, f, &[(u32::from(i) + 1, i)], u32::from(i) + 1);
            store.wal_image_sync().unwrap(); // each record durable before the next
        }
        store.halt(); // a crash: without the durable LSNs this would look torn
    }
    let seg = only_segment(&path);
    let mut bytes = std::fs::read(&seg).unwrap();
    let offs = record_offsets(&bytes);
    assert_eq!(offs.len(), 4);
    bytes[offs[1] + 48 + 200] ^= 0x01;
    std::fs::write(&seg, &bytes).unwrap();

    let err = open(&path).unwrap_err().to_string();
    assert!(err.contains("corrupt"), "{err}");
    assert!(err.contains(&seg.display().to_string()), "{err}");
    assert!(err.contains(&format!("offset {}", offs[1])), "{err}");
}
