//! Libraries for scripts: `json` (`encode`, `decode`), bounded like every host conversion, and `time` (`now`,
//! `format`, `parse`, `date`), in UTC, with formats checked before use. (`utf8` is Luau's own.)

use std::fmt::Write;

use chrono::{
    DateTime, Datelike, NaiveDate, NaiveDateTime, Timelike, Utc,
    format::{Item, StrftimeItems},
};
use mlua::{Lua, Table, Value};

use super::{
    super::vm::{MAX_BYTES, MAX_DEPTH, MAX_VALUES, to_json, to_lua},
    runtime,
};

/// The longest `time.format`/`time.parse` format.
const MAX_FORMAT: usize = 256;
/// The longest text `time.parse` reads.
const MAX_TIME_TEXT: usize = 256;
/// `time.format` without a format: ISO 8601.
const ISO_8601: &str = "%Y-%m-%dT%H:%M:%SZ";

/// Installs `json` and `time`.
pub(super) fn install(lua: &Lua) -> mlua::Result<()> {
    let json = lua.create_table()?;
    json.set(
        "encode",
        lua.create_function(|_, (value, options): (Value, Option<Table>)| {
            let pretty = match options {
                Some(options) => {
                    super::only_keys(&options, "json.encode options", &["pretty"])?;
                    options.get::<Option<bool>>("pretty")?.unwrap_or(false)
                }
                None => false,
            };
            let json = to_json(&value).map_err(|e| runtime(format!("json.encode: {}", plain(&e))))?;
            let text = if pretty { serde_json::to_string_pretty(&json) } else { serde_json::to_string(&json) };
            text.map_err(|e| runtime(format!("json.encode: {e}")))
        })?,
    )?;
    json.set(
        "decode",
        lua.create_function(|lua, text: mlua::LuaString| {
            let text = text.as_bytes();
            check_json_size(&text).map_err(|e| runtime(format!("json.decode: {e}")))?;
            let value: serde_json::Value =
                serde_json::from_slice(&text).map_err(|e| runtime(format!("json.decode: invalid JSON: {e}")))?;
            to_lua(lua, &value)
        })?,
    )?;
    json.set_readonly(true);
    lua.globals().set("json", json)?;

    let time = lua.create_table()?;
    time.set("now", lua.create_function(|_, ()| Ok(Utc::now().timestamp_micros() as f64 / 1e6))?)?;
    time.set(
        "format",
        lua.create_function(|_, (timestamp, format): (f64, Option<String>)| {
            let format = format.as_deref().unwrap_or(ISO_8601);
            let items = items(format).map_err(|e| runtime(format!("time.format: {e}")))?;
            let mut text = String::new();
            write!(text, "{}", utc(timestamp, "time.format")?.format_with_items(items.iter()))
                .map_err(|_| runtime(format!("time.format: {format:?} cannot format this time")))?;
            Ok(text)
        })?,
    )?;
    time.set(
        "parse",
        lua.create_function(|_, (text, format): (String, Option<String>)| {
            let format = format.as_deref().unwrap_or(ISO_8601);
            items(format).map_err(|e| runtime(format!("time.parse: {e}")))?;
            if text.len() > MAX_TIME_TEXT {
                return Err(runtime(format!("time.parse: the text is longer than {MAX_TIME_TEXT} bytes")));
            }
            parse(&text, format)
                .map(|seconds| seconds as f64)
                .map_err(|e| runtime(format!("time.parse: {text:?} does not match {format:?}: {e}")))
        })?,
    )?;
    time.set(
        "date",
        lua.create_function(|lua, timestamp: Option<f64>| {
            let at = match timestamp {
                Some(timestamp) => utc(timestamp, "time.date")?,
                None => Utc::now(),
            };
            let table = lua.create_table()?;
            table.set("year", at.year())?;
            table.set("month", at.month())?;
            table.set("day", at.day())?;
            table.set("hour", at.hour())?;
            table.set("min", at.minute())?;
            table.set("sec", at.second())?;
            // As Lua's os.date("*t"): Sunday is 1.
            table.set("wday", at.weekday().number_from_sunday())?;
            table.set("yday", at.ordinal())?;
            Ok(table)
        })?,
    )?;
    time.set_readonly(true);
    lua.globals().set("time", time)
}

/// A conversion error's message without mlua's wrapping.
fn plain(error: &mlua::Error) -> String {
    match error {
        mlua::Error::RuntimeError(message) => message.clone(),
        other => other.to_string(),
    }
}

/// Refuses JSON text the host should not parse: longer than [`MAX_BYTES`], nested deeper than [`MAX_DEPTH`], or
/// of more than [`MAX_VALUES`] values (counted before parsing, so that a refused text costs one pass over it).
fn check_json_size(text: &[u8]) -> Result<(), String> {
    if text.len() > MAX_BYTES {
        return Err(format!("the text is longer than {MAX_BYTES} bytes"));
    }
    let (mut depth, mut values, mut in_string, mut escaped) = (0usize, 1usize, false, false);
    for &byte in text {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(format!("nested deeper than {MAX_DEPTH} levels"));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b',' => {
                values += 1;
                if values > MAX_VALUES {
                    return Err(format!("more than {MAX_VALUES} values"));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// The items of a strftime format, or why it is not one.
fn items(format: &str) -> Result<Vec<Item<'_>>, String> {
    if format.len() > MAX_FORMAT {
        return Err(format!("the format is longer than {MAX_FORMAT} bytes"));
    }
    let items: Vec<Item<'_>> = StrftimeItems::new(format).collect();
    if items.iter().any(|item| matches!(item, Item::Error)) {
        return Err(format!("invalid format {format:?} (see strftime: %Y-%m-%d %H:%M:%S)"));
    }
    Ok(items)
}

/// A Unix time in seconds as a UTC date and time.
fn utc(timestamp: f64, what: &str) -> mlua::Result<DateTime<Utc>> {
    let whole = timestamp.floor();
    let nanos = ((timestamp - whole) * 1e9) as u32;
    (timestamp.is_finite() && whole.abs() < 1e14)
        .then(|| DateTime::from_timestamp(whole as i64, nanos))
        .flatten()
        .ok_or_else(|| runtime(format!("{what}: {timestamp} is not a time chrono can show")))
}

/// `text` read with `format` as Unix seconds: with an offset when the format has one, else as UTC, else as a date
/// (midnight UTC).
fn parse(text: &str, format: &str) -> Result<i64, chrono::ParseError> {
    DateTime::parse_from_str(text, format)
        .map(|at| at.timestamp())
        .or_else(|_| NaiveDateTime::parse_from_str(text, format).map(|at| at.and_utc().timestamp()))
        .or_else(|first| {
            NaiveDate::parse_from_str(text, format)
                .map(|date| date.and_hms_opt(0, 0, 0).map_or(0, |at| at.and_utc().timestamp()))
                .map_err(|_| first)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_text_is_sized_before_it_is_parsed() {
        check_json_size(br#"{"a": [1, 2, {"b": "[[[[,,,,"}]}"#).unwrap();
        // Bad input: deep nesting, many values, too many bytes.
        assert_eq!(check_json_size("[".repeat(33).as_bytes()).unwrap_err(), "nested deeper than 32 levels");
        let many = format!("[{}0]", "0,".repeat(MAX_VALUES));
        assert_eq!(check_json_size(many.as_bytes()).unwrap_err(), "more than 100000 values");
        let long = format!("\"{}\"", "x".repeat(MAX_BYTES));
        assert!(check_json_size(long.as_bytes()).unwrap_err().contains("longer than 4194304 bytes"));
    }

    #[test]
    fn times_format_and_parse_in_utc() {
        let minutes = items("%Y-%m-%d %H:%M").unwrap();
        let at = utc(86_400.5, "t").unwrap();
        assert_eq!(at.format_with_items(minutes.iter()).to_string(), "1970-01-02 00:00");
        assert_eq!(parse("1970-01-02T00:00:00Z", ISO_8601).unwrap(), 86_400);
        assert_eq!(parse("2026-11-30 12:00 +0100", "%Y-%m-%d %H:%M %z").unwrap(), 1_796_040_000 - 3600);
        assert_eq!(parse("1970-01-03", "%Y-%m-%d").unwrap(), 172_800);
        // Bad input: an unknown specifier, a time out of range, text that does not match.
        assert!(items("%Q").unwrap_err().contains("invalid format"));
        assert!(utc(f64::NAN, "t").is_err() && utc(1e300, "t").is_err());
        assert!(parse("yesterday", ISO_8601).is_err());
    }
}
