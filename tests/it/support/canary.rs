//! Canary registry: values a test seeded as secrets, which must never appear in
//! anything credfile prints. Failure messages name the canary by index and
//! length only, never its value.

use std::sync::{Arc, Mutex, OnceLock};

use base64::Engine as _;

/// Shortest value that counts as a canary; shorter ones match by accident.
pub const MIN_CANARY_LEN: usize = 6;

/// A shared, cloneable registry of canary values. Clones share one list.
#[derive(Clone, Default)]
pub struct Canaries {
    values: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl std::fmt::Debug for Canaries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the values.
        write!(f, "Canaries({} registered)", self.len())
    }
}

impl Canaries {
    /// A new, empty, private registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The process-wide registry: `Seeder` registers into it and
    /// `Credfile` checks against it unless told otherwise.
    /// Values are random per test, so sharing across parallel tests only makes
    /// the check stricter.
    pub fn global() -> Self {
        static GLOBAL: OnceLock<Canaries> = OnceLock::new();
        GLOBAL.get_or_init(Canaries::new).clone()
    }

    /// Register one value. Returns false (and ignores it) when it is shorter
    /// than [`MIN_CANARY_LEN`] bytes or already registered.
    pub fn add(&self, value: impl AsRef<[u8]>) -> bool {
        let value = value.as_ref();
        if value.len() < MIN_CANARY_LEN {
            return false;
        }
        let mut values = self.values.lock().unwrap_or_else(|e| e.into_inner());
        if values.iter().any(|v| v.as_slice() == value) {
            return false;
        }
        values.push(value.to_vec());
        true
    }

    /// Register a SecretString: the whole string and, when it is JSON, every
    /// string leaf in it (credfile extracts single keys, so a leaked key value
    /// must be caught too).
    pub fn add_secret_string(&self, secret: &str) {
        self.add(secret);
        if let Ok(json) = serde_json::from_str::<serde_json::Value>(secret) {
            self.add_json_leaves(&json);
        }
    }

    /// Register a SecretBinary: the raw bytes and their standard base64 form.
    pub fn add_secret_binary(&self, secret: &[u8]) {
        self.add(secret);
        self.add(base64::engine::general_purpose::STANDARD.encode(secret));
    }

    fn add_json_leaves(&self, v: &serde_json::Value) {
        match v {
            serde_json::Value::String(s) => {
                self.add(s);
            }
            serde_json::Value::Array(items) => items.iter().for_each(|i| self.add_json_leaves(i)),
            serde_json::Value::Object(map) => map.values().for_each(|i| self.add_json_leaves(i)),
            _ => {}
        }
    }

    /// Number of registered canaries.
    pub fn len(&self) -> usize {
        self.values.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// First canary found in `haystack`: `(canary index, canary length, byte offset)`.
    pub fn find(&self, haystack: &[u8]) -> Option<(usize, usize, usize)> {
        let values = self.values.lock().unwrap_or_else(|e| e.into_inner());
        values.iter().enumerate().find_map(|(i, c)| {
            haystack
                .windows(c.len())
                .position(|w| w == c.as_slice())
                .map(|off| (i, c.len(), off))
        })
    }
}

/// Panic if any registered canary occurs in `haystack`. `what` names the stream
/// or file (e.g. "stdout of `credfile apply`"). The message never contains the
/// canary, nor the haystack.
#[track_caller]
pub fn assert_no_leak(canaries: &Canaries, haystack: impl AsRef<[u8]>, what: &str) {
    if let Some((index, len, offset)) = canaries.find(haystack.as_ref()) {
        panic!(
            "SECRET LEAK: canary #{index} ({len} bytes) appears in {what} at byte offset {offset} \
             (value and output withheld on purpose)"
        );
    }
}
