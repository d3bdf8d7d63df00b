//! A value's text shared with the template engine without a copy, wiped when the last holder
//! drops it (docs/src/guarantees.md, "the process is hard to read").
//!
//! minijinja keeps strings as `Arc<str>` and frees them without zeroing. A [`SecretStr`] hands
//! minijinja clones of its own `Arc`, so reading `{{ v }}` copies nothing; when the
//! `SecretStr` is dropped after every minijinja value of the render is gone, it holds the last
//! reference and zeroes the text before it is freed. (If some clone were still alive it could
//! not: the render keeps its context alive past the engine's state so that this does not
//! happen, see `render::render_one`.)

use std::fmt;
use std::sync::Arc;

use zeroize::{Zeroize, Zeroizing};

/// A secret string, zeroed on drop when no one else holds it; `Debug` shows no value.
pub struct SecretStr(Arc<str>);

impl SecretStr {
    /// Copies `text` into a new shared allocation; `text` itself zeroes on its own drop.
    pub fn new(text: &str) -> SecretStr {
        SecretStr(Arc::from(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A template value sharing this text (no copy).
    pub fn to_value(&self) -> minijinja::Value {
        minijinja::Value::from(self.0.clone())
    }
}

impl From<Zeroizing<String>> for SecretStr {
    fn from(text: Zeroizing<String>) -> SecretStr {
        SecretStr::new(&text)
    }
}

impl Drop for SecretStr {
    fn drop(&mut self) {
        if let Some(text) = Arc::get_mut(&mut self.0) {
            text.zeroize();
            #[cfg(test)]
            hook::wiped(text);
        }
    }
}

impl fmt::Debug for SecretStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretStr(..)")
    }
}

/// Test-only: what each drop left in memory just before the free.
#[cfg(test)]
pub mod hook {
    use std::cell::RefCell;

    thread_local! {
        static WIPED: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
    }

    pub(super) fn wiped(text: &str) {
        WIPED.with(|w| w.borrow_mut().push(text.as_bytes().to_vec()));
    }

    /// The texts wiped on this thread since the last call, as left in memory.
    pub fn take() -> Vec<Vec<u8>> {
        WIPED.with(|w| std::mem::take(&mut *w.borrow_mut()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_zeroes_the_text_and_debug_shows_none() {
        hook::take();
        let s = SecretStr::new("canary-q7-secret");
        assert_eq!(format!("{s:?}"), "SecretStr(..)");
        drop(s);
        assert_eq!(hook::take(), vec![vec![0u8; 16]]);
    }

    #[test]
    fn a_template_reading_it_copies_nothing_and_it_is_wiped_after() {
        hook::take();
        let s = SecretStr::new("canary-q7-secret");
        let v = s.to_value();
        assert_eq!(v.as_str(), Some("canary-q7-secret"));
        let mut env = minijinja::Environment::new();
        env.add_template("t", "{{ v }}").unwrap();
        let out = env
            .get_template("t")
            .unwrap()
            .render(minijinja::context! { v => v.clone() })
            .unwrap();
        assert_eq!(out, "canary-q7-secret");
        drop((v, env));
        drop(s);
        assert_eq!(hook::take(), vec![vec![0u8; 16]]);
    }
}
