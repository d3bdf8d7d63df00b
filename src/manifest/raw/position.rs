//! Where a node is in the manifest's text. serde_yaml gives positions only with its errors, so
//! each lookup walks the document with a probe that fails on purpose where it wants to know.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// One step of a path into the document: `files[3].secret` is `[Key("files"), Index(3), Key("secret")]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// Finds the 1-based line and column of the node at `path`, or of its nearest ancestor that exists.
///
/// serde_yaml exposes positions only on errors, so this walks the document with a probe that
/// fails on purpose when it reaches the node; the error carries the node's position.
pub fn locate(text: &str, path: &[Seg]) -> (usize, usize) {
    for len in (0..=path.len()).rev() {
        let probe = Probe { path: &path[..len] };
        if let Err(err) = probe.deserialize(serde_yaml::Deserializer::from_str(text))
            && err.to_string().contains(PROBE_MARK)
            && let Some(loc) = err.location()
        {
            return (loc.line(), loc.column());
        }
    }
    (1, 1)
}

const PROBE_MARK: &str = "credfile-locate-probe";

/// The 1-based line of every entry of the top-level `files` sequence, from one parse.
///
/// [`locate`] parses the whole document per call, so calling it for each of N entries costs
/// O(N²) (500 entries: a quarter of a second). This walks the document once and makes each
/// entry's first key fail on purpose: a key is one scalar event, so after the failure the walk
/// can go on, and the error carries the key's position, which is where the entry starts
/// (`- path: ...`). `None` when the document has another shape (an entry that is not a mapping
/// with a scalar first key), so the caller falls back to [`locate`].
pub fn entry_lines(text: &str) -> Option<Vec<usize>> {
    let mut lines = Vec::new();
    TopLevel { lines: &mut lines }
        .deserialize(serde_yaml::Deserializer::from_str(text))
        .ok()?;
    Some(lines)
}

/// The lines (1-based, inclusive) each `files` entry spans: from its first key to the line
/// before the next entry; the last entry ends before the next top-level key, or at the end.
/// Used to apply an entry's `lint.allow` to findings reported by line.
pub fn entry_spans(text: &str, entries: usize) -> Vec<std::ops::RangeInclusive<usize>> {
    let starts: Vec<usize> = entry_lines(text).unwrap_or_else(|| {
        (0..entries)
            .map(|i| locate(text, &[Seg::Key("files".into()), Seg::Index(i)]).0)
            .collect()
    });
    let lines: Vec<&str> = text.lines().collect();
    (0..starts.len())
        .map(|i| {
            let start = starts[i];
            let end = match starts.get(i + 1) {
                Some(&next) => next.saturating_sub(1).max(start),
                None => lines
                    .iter()
                    .enumerate()
                    .skip(start)
                    .find(|(_, l)| {
                        l.starts_with(|c: char| !c.is_whitespace() && c != '-' && c != '#')
                    })
                    .map_or(lines.len(), |(n, _)| n),
            };
            start..=end
        })
        .collect()
}

struct TopLevel<'a> {
    lines: &'a mut Vec<usize>,
}

impl<'de> DeserializeSeed<'de> for TopLevel<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TopLevel<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("the manifest's top-level mapping")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if key == "files" {
                map.next_value_seed(Entries {
                    lines: &mut *self.lines,
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

struct Entries<'a> {
    lines: &'a mut Vec<usize>,
}

impl<'de> DeserializeSeed<'de> for Entries<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Entries<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of files")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq
            .next_element_seed(EntryStart {
                lines: &mut *self.lines,
            })?
            .is_some()
        {}
        Ok(())
    }
}

struct EntryStart<'a> {
    lines: &'a mut Vec<usize>,
}

impl<'de> DeserializeSeed<'de> for EntryStart<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for EntryStart<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a file entry")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        match map.next_key_seed(Probe { path: &[] }) {
            Err(err) => match err_line(&err) {
                Some(line) => self.lines.push(line),
                None => return Err(err),
            },
            Ok(_) => return Err(de::Error::custom("entry without a scalar first key")),
        }
        map.next_value::<IgnoredAny>()?;
        while map.next_key::<IgnoredAny>()?.is_some() {
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }
}

/// The line of a [`Probe`] failure. Only a `serde_yaml::Error` carries one, so the generic
/// error is matched through its message, where serde_yaml prints the position.
fn err_line<E: de::Error>(err: &E) -> Option<usize> {
    let text = err.to_string();
    if !text.contains(PROBE_MARK) {
        return None;
    }
    let rest = &text[text.rfind(" at line ")? + " at line ".len()..];
    rest.split(' ').next()?.parse().ok()
}

struct Probe<'a> {
    path: &'a [Seg],
}

impl Probe<'_> {
    fn here<T, E: de::Error>(&self) -> Result<T, E>
    where
        T: Default,
    {
        if self.path.is_empty() {
            Err(E::custom(PROBE_MARK))
        } else {
            Ok(T::default())
        }
    }
}

impl<'de> DeserializeSeed<'de> for Probe<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Probe<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML node")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.here()
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.here()
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.here()
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.here()
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.here()
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.here()
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.here()
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.here::<(), _>()?;
        let mut index = 0;
        loop {
            let found = match &self.path[0] {
                Seg::Index(i) if *i == index => seq
                    .next_element_seed(Probe {
                        path: &self.path[1..],
                    })?
                    .is_some(),
                _ => seq.next_element::<IgnoredAny>()?.is_some(),
            };
            if !found {
                return Ok(());
            }
            index += 1;
        }
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.here::<(), _>()?;
        while let Some(key) = map.next_key::<String>()? {
            match &self.path[0] {
                Seg::Key(k) if *k == key => map.next_value_seed(Probe {
                    path: &self.path[1..],
                })?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}
