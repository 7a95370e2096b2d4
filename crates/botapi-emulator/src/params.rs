//! Bot API call parameters, whichever way they came: query string, JSON, url-encoded form or multipart form.
//! Telegram accepts every value of a form as a string (numbers, booleans, JSON-serialized objects); `Params`
//! reads each type from either shape.

use std::collections::HashMap;

use axum::{
    body::Bytes,
    extract::{FromRequest, Multipart, Request},
    http::{HeaderMap, header::CONTENT_TYPE},
};
use serde_json::{Map, Value};

use crate::error::ApiError;

/// A file uploaded in a multipart field.
#[derive(Debug, Clone)]
pub(crate) struct Upload {
    pub(crate) file_name: Option<String>,
    pub(crate) mime_type: Option<String>,
    pub(crate) bytes: Bytes,
}

/// The parameters of one call.
#[derive(Debug, Default)]
pub(crate) struct Params {
    pub(crate) values: Map<String, Value>,
    pub(crate) files: HashMap<String, Upload>,
}

impl Params {
    /// Reads the query string and the body of `req` (whose body is already limited in size).
    pub(crate) async fn from_request(req: Request, limit: usize) -> Result<Params, ApiError> {
        let mut params = Params::default();
        if let Some(query) = req.uri().query() {
            params.extend_form(query.as_bytes())?;
        }
        let content_type = content_type(req.headers());
        if content_type.starts_with("multipart/form-data") {
            let mut multipart = Multipart::from_request(req, &())
                .await
                .map_err(|e| ApiError::bad_request(format!("can't parse multipart form: {}", e.body_text())))?;
            loop {
                let field = match multipart.next_field().await {
                    Ok(Some(field)) => field,
                    Ok(None) => break,
                    Err(e) if e.status().as_u16() == 413 => return Err(ApiError::too_large()),
                    Err(e) => {
                        return Err(ApiError::bad_request(format!("can't parse multipart form: {e}")));
                    }
                };
                let Some(name) = field.name().map(str::to_owned) else {
                    continue;
                };
                let file_name = field.file_name().map(str::to_owned);
                let mime_type = field.content_type().map(str::to_owned);
                let bytes = field.bytes().await.map_err(|e| match e.status().as_u16() {
                    413 => ApiError::too_large(),
                    _ => ApiError::bad_request(format!("can't parse multipart form: {e}")),
                })?;
                if file_name.is_some() {
                    params.files.insert(name, Upload { file_name, mime_type, bytes });
                } else {
                    let text = String::from_utf8(bytes.to_vec())
                        .map_err(|_| ApiError::bad_request("strings must be encoded in UTF-8"))?;
                    params.values.insert(name, Value::String(text));
                }
            }
            return Ok(params);
        }
        let body = axum::body::to_bytes(req.into_body(), limit).await.map_err(|_| ApiError::too_large())?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(params);
        }
        if content_type.starts_with("application/json") {
            match serde_json::from_slice::<Value>(&body) {
                Ok(Value::Object(map)) => params.values.extend(map),
                Ok(_) => return Err(ApiError::bad_request("parameters must be a JSON object")),
                Err(e) => {
                    return Err(ApiError::bad_request(format!("can't parse JSON request body: {e}")));
                }
            }
        } else {
            params.extend_form(&body)?;
        }
        Ok(params)
    }

    fn extend_form(&mut self, form: &[u8]) -> Result<(), ApiError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(form)
            .map_err(|_| ApiError::bad_request("can't parse URL-encoded parameters"))?;
        for (k, v) in pairs {
            self.values.insert(k, Value::String(v));
        }
        Ok(())
    }

    /// The raw value, if present and not null.
    pub(crate) fn get(&self, name: &str) -> Option<&Value> {
        self.values.get(name).filter(|v| !v.is_null())
    }

    /// An integer given as a number or a numeric string.
    pub(crate) fn int(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| wrong(name)),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| wrong(name)),
            Some(_) => Err(wrong(name)),
        }
    }

    /// A string; numbers and booleans are turned into their text as Telegram does.
    pub(crate) fn str(&self, name: &str) -> Result<Option<String>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v @ (Value::Number(_) | Value::Bool(_))) => Ok(Some(v.to_string())),
            Some(_) => Err(wrong(name)),
        }
    }

    /// A boolean given as `true`/`false`, `1`/`0` or a JSON boolean.
    pub(crate) fn bool(&self, name: &str) -> Result<bool, ApiError> {
        match self.get(name) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(Value::Number(n)) => Ok(n.as_i64() != Some(0)),
            Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Ok(true),
                "false" | "0" | "no" | "off" | "" => Ok(false),
                _ => Err(wrong(name)),
            },
            Some(_) => Err(wrong(name)),
        }
    }

    /// A JSON-serialized object or array, given either as JSON or as a string holding JSON; `error` is the
    /// description when it does not parse.
    pub(crate) fn json(&self, name: &str, error: &str) -> Result<Option<Value>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => serde_json::from_str(s).map(Some).map_err(|_| ApiError::bad_request(error)),
            Some(v) => Ok(Some(v.clone())),
        }
    }

    /// The parameters for the call log: values as given, files summarised.
    pub(crate) fn for_log(self) -> Value {
        let mut values = self.values;
        for (name, file) in self.files {
            let summary = serde_json::json!({
                "file_name": file.file_name,
                "mime_type": file.mime_type,
                "size": file.bytes.len(),
            });
            values.insert(name, summary);
        }
        Value::Object(values)
    }
}

fn content_type(headers: &HeaderMap) -> String {
    let value = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    value.trim().to_ascii_lowercase()
}

fn wrong(name: &str) -> ApiError {
    ApiError::bad_request(format!("wrong parameter {name} in request"))
}
