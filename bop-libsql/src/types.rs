//! The plain types of bop-libsql's API: open flags and values.

/// Flags of [`crate::open`] (SQLite's `SQLITE_OPEN_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenFlags(pub i32);

impl OpenFlags {
    pub const READ_ONLY: OpenFlags = OpenFlags(libsql_ffi::SQLITE_OPEN_READONLY);
    pub const READ_WRITE: OpenFlags = OpenFlags(libsql_ffi::SQLITE_OPEN_READWRITE);
    pub const CREATE: OpenFlags = OpenFlags(libsql_ffi::SQLITE_OPEN_CREATE);
    /// Accept `file:` URIs with bop's parameters (`max_txn_mb`, `io`, ...).
    pub const URI: OpenFlags = OpenFlags(libsql_ffi::SQLITE_OPEN_URI);
    pub const NO_MUTEX: OpenFlags = OpenFlags(libsql_ffi::SQLITE_OPEN_NOMUTEX);
}

impl Default for OpenFlags {
    /// Read-write, create, URIs accepted.
    fn default() -> Self {
        OpenFlags::READ_WRITE | OpenFlags::CREATE | OpenFlags::URI
    }
}

impl std::ops::BitOr for OpenFlags {
    type Output = OpenFlags;
    fn bitor(self, o: OpenFlags) -> OpenFlags {
        OpenFlags(self.0 | o.0)
    }
}

/// A value of a result column or a parameter.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl Value {
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Integer(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Integer(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Text(v.to_owned())
    }
}

impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Value {
        Value::Blob(v)
    }
}
