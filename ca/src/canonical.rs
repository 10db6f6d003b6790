//! Canonical JSON, used for every document the CA or a loader signs. Pure.
//!
//! Rules: objects have their keys sorted by their UTF-8 bytes, no
//! insignificant whitespace, strings escaped as `serde_json` escapes them
//! (`"`, `\` and control characters; everything else verbatim UTF-8), integers
//! in shortest decimal form, and **no floating-point numbers** (a float is an
//! error). `null`, `true` and `false` as usual. Two equal values therefore
//! have exactly one encoding, and a signature over the encoding is a
//! signature over the value.

use serde::Serialize;
use serde_json::Value;

/// Why a value has no canonical encoding.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CanonicalError {
    #[error("value does not serialize to JSON: {0}")]
    Serialize(String),
    #[error("floating-point numbers have no canonical encoding")]
    Float,
    #[error("document is not in canonical form")]
    NotCanonical,
    #[error("document is not valid JSON: {0}")]
    Parse(String),
}

impl CanonicalError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Serialize(_) => "CANONICAL_SERIALIZE",
            Self::Float => "CANONICAL_FLOAT",
            Self::NotCanonical => "CANONICAL_NOT_CANONICAL",
            Self::Parse(_) => "CANONICAL_PARSE",
        }
    }
}

/// The canonical JSON encoding of `value`.
pub fn to_string<T: Serialize + ?Sized>(value: &T) -> Result<String, CanonicalError> {
    let v = serde_json::to_value(value).map_err(|e| CanonicalError::Serialize(e.to_string()))?;
    let mut out = String::new();
    write_value(&v, &mut out)?;
    Ok(out)
}

/// Parses `text` as `T` and checks that `text` is exactly the canonical
/// encoding of what was parsed (so no two texts verify as the same document).
pub fn from_str<T: Serialize + serde::de::DeserializeOwned>(
    text: &str,
) -> Result<T, CanonicalError> {
    let value: T = serde_json::from_str(text).map_err(|e| CanonicalError::Parse(e.to_string()))?;
    if to_string(&value)? != text {
        return Err(CanonicalError::NotCanonical);
    }
    Ok(value)
}

fn write_value(v: &Value, out: &mut String) -> Result<(), CanonicalError> {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if n.is_f64() {
                return Err(CanonicalError::Float);
            }
            out.push_str(&n.to_string());
        }
        Value::String(s) => write_str(s, out)?,
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(item, out)?;
            }
            out.push(']');
        }
        Value::Object(map) => {
            // Sort explicitly: the map's own order depends on serde_json features.
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (k, val)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_str(k, out)?;
                out.push(':');
                write_value(val, out)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

fn write_str(s: &str, out: &mut String) -> Result<(), CanonicalError> {
    let enc = serde_json::to_string(s).map_err(|e| CanonicalError::Serialize(e.to_string()))?;
    out.push_str(&enc);
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sorted_compact_and_no_floats() {
        let v = json!({"b": 1, "a": [true, null, "x\"y"], "c": {"z": -3, "y": "é"}});
        assert_eq!(
            to_string(&v).unwrap(),
            r#"{"a":[true,null,"x\"y"],"b":1,"c":{"y":"é","z":-3}}"#
        );
        assert_eq!(
            to_string(&json!({"f": 1.5})).unwrap_err().code(),
            "CANONICAL_FLOAT"
        );
    }

    #[test]
    fn non_canonical_text_is_rejected() {
        let ok: Value = from_str(r#"{"a":1,"b":2}"#).unwrap();
        assert_eq!(ok, json!({"a":1,"b":2}));
        for bad in [r#"{"b":2,"a":1}"#, r#"{"a": 1,"b":2}"#, r#"{"a":1,"b":2} "#] {
            assert_eq!(
                from_str::<Value>(bad).unwrap_err().code(),
                "CANONICAL_NOT_CANONICAL",
                "{bad}"
            );
        }
    }
}
