//! JSON values parsed from secrets, held in zeroizing memory: for templates, for `key:`
//! selection and for `keys: all` (serde_json's own `Value` would free its strings unwiped).
//!
//! A template reads a JSON secret as an object (`{{ db.host }}`). The parsed tree lives here, each
//! string a [`SecretStr`], and minijinja sees it through [`Object`]: a member becomes a
//! minijinja value only when the template reads it, sharing the string (no copy). Printing an
//! object prints JSON: the secret's text exactly as stored for a whole secret, compact JSON for a
//! nested object or array.
//!
//! What is zeroized on drop: the secret's text, every string and number of the tree. What is not
//! (minijinja and serde_json give no hook): serde_json's scratch buffer for a string holding
//! escapes, and the intermediate strings of filters, `~` and `{% set %}` blocks, which live only
//! during the render. Key names are names, not values, and are not wiped.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use minijinja::value::{Enumerator, Object, ObjectRepr, Value};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use zeroize::Zeroizing;

use super::secret_str::SecretStr;

/// A JSON value whose strings and numbers are wiped when it is dropped. `Debug` shows no value.
pub enum Json {
    Null,
    Bool(Zeroizing<bool>),
    Int(Zeroizing<i64>),
    UInt(Zeroizing<u64>),
    Float(Zeroizing<f64>),
    Str(SecretStr),
    Array(Arc<JsonArray>),
    Object(Arc<JsonObject>),
}

/// A JSON object. Keys are names (credfile writes them as file names for `keys: all`), not
/// values; they may appear in messages.
pub struct JsonObject {
    entries: BTreeMap<String, Json>,
    /// The secret's own text, for a whole secret: printing it prints the value as stored.
    text: Option<Zeroizing<String>>,
}

pub struct JsonArray(Vec<Json>);

// Debug is required by `Object`; it must never show a value.
impl fmt::Debug for JsonObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JsonObject({} keys)", self.entries.len())
    }
}

impl fmt::Debug for JsonArray {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JsonArray({} items)", self.0.len())
    }
}

impl Json {
    fn to_value(&self) -> Value {
        match self {
            Json::Null => Value::from(()),
            Json::Bool(b) => Value::from(**b),
            Json::Int(i) => Value::from(**i),
            Json::UInt(u) => Value::from(**u),
            Json::Float(x) => Value::from(**x),
            Json::Str(s) => s.to_value(),
            Json::Array(a) => Value::from_dyn_object(a.clone()),
            Json::Object(o) => Value::from_dyn_object(o.clone()),
        }
    }

    /// Compact JSON, as serde_json writes it (what a raw file with `key:` holds).
    fn write(&self, f: &mut dyn fmt::Write) -> fmt::Result {
        match self {
            Json::Null => f.write_str("null"),
            Json::Bool(b) => write!(f, "{}", **b),
            Json::Int(i) => write!(f, "{}", **i),
            Json::UInt(u) => write!(f, "{}", **u),
            Json::Float(x) => match serde_json::Number::from_f64(**x) {
                Some(n) => write!(f, "{n}"),
                None => f.write_str("null"),
            },
            Json::Str(s) => write_string(s.as_str(), f),
            Json::Array(a) => {
                f.write_char('[')?;
                for (i, item) in a.0.iter().enumerate() {
                    if i > 0 {
                        f.write_char(',')?;
                    }
                    item.write(f)?;
                }
                f.write_char(']')
            }
            Json::Object(o) => o.write_compact(f),
        }
    }
}

impl fmt::Debug for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Json::Object(o) => o.fmt(f),
            Json::Array(a) => a.fmt(f),
            _ => f.write_str("Json(..)"),
        }
    }
}

impl Json {
    /// Parses a secret's text. serde_json's errors carry positions only, never the input.
    pub fn parse(text: &str) -> Result<Json, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// An object's member.
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(o) => o.entries.get(key),
            _ => None,
        }
    }

    /// A JSON pointer (RFC 6901), as `serde_json::Value::pointer` reads one.
    pub fn pointer(&self, pointer: &str) -> Option<&Json> {
        if pointer.is_empty() {
            return Some(self);
        }
        pointer
            .strip_prefix('/')?
            .split('/')
            .try_fold(self, |at, token| {
                let token = token.replace("~1", "/").replace("~0", "~");
                match at {
                    Json::Object(o) => o.entries.get(&token),
                    Json::Array(a) => {
                        let index = (!token.starts_with('+')
                            && (token == "0" || !token.starts_with('0')))
                        .then(|| token.parse::<usize>().ok())
                        .flatten()?;
                        a.0.get(index)
                    }
                    _ => None,
                }
            })
    }

    /// An object's key names (names, not values), sorted; `None` for anything else.
    pub fn keys(&self) -> Option<Vec<&str>> {
        match self {
            Json::Object(o) => Some(o.entries.keys().map(String::as_str).collect()),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s.as_str()),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Json::Null)
    }

    /// Compact JSON text, as serde_json writes it, in zeroizing memory.
    pub fn compact(&self) -> Zeroizing<String> {
        let mut out = Zeroizing::new(String::new());
        // Writing into a String cannot fail.
        let _ = self.write(&mut *out);
        out
    }
}

impl JsonObject {
    fn write_compact(&self, f: &mut dyn fmt::Write) -> fmt::Result {
        f.write_char('{')?;
        for (i, (k, v)) in self.entries.iter().enumerate() {
            if i > 0 {
                f.write_char(',')?;
            }
            write_string(k, f)?;
            f.write_char(':')?;
            v.write(f)?;
        }
        f.write_char('}')
    }
}

/// A JSON string literal, escaped as serde_json does, written piece by piece (no copy).
fn write_string(s: &str, f: &mut dyn fmt::Write) -> fmt::Result {
    f.write_char('"')?;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let esc = match c {
            '"' => "\\\"",
            '\\' => "\\\\",
            '\n' => "\\n",
            '\r' => "\\r",
            '\t' => "\\t",
            '\u{8}' => "\\b",
            '\u{c}' => "\\f",
            c if (c as u32) < 0x20 => "",
            _ => continue,
        };
        f.write_str(&s[start..i])?;
        if esc.is_empty() {
            write!(f, "\\u{:04x}", c as u32)?;
        } else {
            f.write_str(esc)?;
        }
        start = i + c.len_utf8();
    }
    f.write_str(&s[start..])?;
    f.write_char('"')
}

impl Object for JsonObject {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.entries.get(key.as_str()?).map(Json::to_value)
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(
            self.entries
                .keys()
                .map(|k| Value::from(k.as_str()))
                .collect(),
        )
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        Some(self.entries.len())
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.text {
            Some(text) => f.write_str(text),
            None => self.write_compact(f),
        }
    }
}

impl Object for JsonArray {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Seq
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let i = usize::try_from(key.as_i64()?).ok()?;
        self.0.get(i).map(Json::to_value)
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Seq(self.0.len())
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Json::Array(self.clone()).write(f)
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Json, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("JSON")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Json, E> {
        Ok(Json::Bool(Zeroizing::new(b)))
    }
    fn visit_i64<E: de::Error>(self, i: i64) -> Result<Json, E> {
        Ok(Json::Int(Zeroizing::new(i)))
    }
    fn visit_u64<E: de::Error>(self, u: u64) -> Result<Json, E> {
        Ok(match i64::try_from(u) {
            Ok(i) => Json::Int(Zeroizing::new(i)),
            Err(_) => Json::UInt(Zeroizing::new(u)),
        })
    }
    fn visit_f64<E: de::Error>(self, x: f64) -> Result<Json, E> {
        Ok(Json::Float(Zeroizing::new(x)))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Json, E> {
        Ok(Json::Str(SecretStr::new(s)))
    }
    fn visit_string<E: de::Error>(self, s: String) -> Result<Json, E> {
        Ok(Json::Str(SecretStr::from(Zeroizing::new(s))))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(Arc::new(JsonArray(items))))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut entries = BTreeMap::new();
        // A repeated key: the last one wins, as in serde_json's own maps.
        while let Some((k, v)) = map.next_entry::<String, Json>()? {
            entries.insert(k, v);
        }
        Ok(Json::Object(Arc::new(JsonObject {
            entries,
            text: None,
        })))
    }
}

/// A whole value (no `key:`) as a template sees it: an object when its text is a JSON object,
/// else the text as a string (a JSON string, number or array stays the text as stored).
pub fn whole(text: Zeroizing<String>, keep: &mut Vec<SecretStr>) -> Value {
    if text.trim_start().starts_with('{')
        && let Ok(Json::Object(mut obj)) = serde_json::from_str::<Json>(&text)
        && let Some(unique) = Arc::get_mut(&mut obj)
    {
        unique.text = Some(text);
        return Value::from_dyn_object(obj);
    }
    string(text, keep)
}

/// A string for a template, shared with a [`SecretStr`] that `keep` holds until the engine's
/// values are gone, so that it can wipe the text.
pub fn string(text: Zeroizing<String>, keep: &mut Vec<SecretStr>) -> Value {
    let s = SecretStr::from(text);
    let v = s.to_value();
    keep.push(s);
    v
}

/// A non-string JSON value selected with `key:` (its compact JSON text): objects and arrays keep
/// their shape, so `{{ db.port }}` and loops work.
pub fn selected(text: &str) -> Value {
    match serde_json::from_str::<Json>(text) {
        Ok(json) => json.to_value(),
        Err(_) => Value::from(text),
    }
}

/// The key names (never values) of `value` if it is one of our objects, at most 20, each
/// shortened and stripped of control characters; `None` when it is not an object.
pub fn key_names(value: &Value) -> Option<Vec<String>> {
    let names: Vec<String> = if let Some(obj) = value.downcast_object_ref::<JsonObject>() {
        obj.entries.keys().cloned().collect()
    } else if value.kind() == minijinja::value::ValueKind::Map {
        value
            .try_iter()
            .ok()?
            .filter_map(|k| k.as_str().map(str::to_string))
            .collect()
    } else {
        return None;
    };
    let total = names.len();
    let mut out: Vec<String> = names
        .into_iter()
        .take(20)
        .map(|k| {
            format!(
                "`{}`",
                crate::terminal::sanitize(&k.chars().take(64).collect::<String>())
            )
        })
        .collect();
    if total > 20 {
        out.push(format!("and {} more", total - 20));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_json_object_reads_by_key_and_prints_as_stored() {
        let text = "{ \"host\": \"h\", \"port\": 5432, \"n\": {\"a\": [1, \"x\\n\"]} }";
        let v = whole(Zeroizing::new(text.to_string()), &mut Vec::new());
        assert_eq!(v.get_attr("host").unwrap().as_str(), Some("h"));
        assert_eq!(v.get_attr("port").unwrap().as_i64(), Some(5432));
        assert_eq!(v.to_string(), text);
        let n = v.get_attr("n").unwrap();
        assert_eq!(n.to_string(), "{\"a\":[1,\"x\\n\"]}");
        assert!(v.get_attr("nope").unwrap().is_undefined());
        let debug = format!("{:?}", v.downcast_object_ref::<JsonObject>().unwrap());
        assert_eq!(debug, "JsonObject(3 keys)");
    }

    #[test]
    fn other_text_stays_a_string() {
        for text in ["plain", "\"quoted\"", "5432", "[1,2]", "{not json", ""] {
            let v = whole(Zeroizing::new(text.to_string()), &mut Vec::new());
            assert_eq!(v.as_str(), Some(text), "{text}");
        }
    }

    #[test]
    fn compact_json_matches_serde_json() {
        let text = r#"{"b":[true,null,1.5,-3,18446744073709551615],"a":"q\"\\\u0001\t"}"#;
        let ours = selected(text).to_string();
        let theirs = serde_json::from_str::<serde_json::Value>(text)
            .unwrap()
            .to_string();
        assert_eq!(ours, theirs);
    }

    #[test]
    fn a_parsed_tree_wipes_every_string_on_drop_and_debug_shows_none() {
        use super::super::secret_str::hook;
        hook::take();
        let doc = Json::parse(r#"{"user":"canary-u1","n":{"p":["canary-p22"]}}"#).unwrap();
        assert_eq!(format!("{doc:?}"), "JsonObject(2 keys)");
        assert_eq!(format!("{:?}", doc.get("user").unwrap()), "Json(..)");
        assert_eq!(doc.pointer("/n/p/0").unwrap().as_str(), Some("canary-p22"));
        assert_eq!(
            &*doc.pointer("/n").unwrap().compact(),
            r#"{"p":["canary-p22"]}"#
        );
        drop(doc);
        let mut wiped = hook::take();
        wiped.sort();
        assert_eq!(wiped, vec![vec![0u8; 9], vec![0u8; 10]]);
    }

    #[test]
    fn template_values_are_wiped_once_the_render_is_over() {
        use super::super::secret_str::hook;
        hook::take();
        let mut keep = Vec::new();
        let db = whole(
            Zeroizing::new(r#"{"user":"canary-u1"}"#.to_string()),
            &mut keep,
        );
        let v = string(Zeroizing::new("canary-v22".to_string()), &mut keep);
        let kept = vec![db.clone(), v.clone()];
        let out = super::super::template::render(
            "t",
            "{{ db.user }} {{ v }}",
            vec![("db".into(), db), ("v".into(), v)],
        )
        .unwrap();
        assert_eq!(&*out, "canary-u1 canary-v22");
        drop(kept);
        drop(keep);
        let mut wiped = hook::take();
        wiped.sort();
        assert_eq!(wiped, vec![vec![0u8; 9], vec![0u8; 10]]);
    }
}
