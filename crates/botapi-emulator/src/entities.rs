//! Telegram-compatible parsing of formatted text (`parse_mode`) into plain text plus
//! `MessageEntity` values, and detection of the entities Telegram finds by itself.
//! The parsers mirror TDLib (which the Bot API server runs), so offsets, dropped entities
//! and error details match Telegram. Where the Bot API docs are silent we copy TDLib: in
//! HTML, unknown named entities (`&nbsp;`), a bare `&` and a stray `>` stay literal and the
//! `;` ending an entity is optional, while a `<` that does not open a supported tag is an
//! error; link URLs are normalised (`example.com` becomes `http://example.com/`) and links
//! with an invalid URL are silently dropped; entities nested inside `code`/`pre` are removed
//! and bold/italic/underline/strikethrough/spoiler are split around them, as the documented
//! nesting rules require. `html` and `markdown` hold the parsers of each mode.

mod html;
mod markdown;

use std::cmp::Reverse;

use html::{html_entity, parse_html};
use markdown::{parse_markdown, parse_markdown_v2};

/// Formatting syntax selected by the `parse_mode` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ParseMode {
    /// `HTML` style.
    Html,
    /// `MarkdownV2` style.
    MarkdownV2,
    /// Legacy `Markdown` style.
    Markdown,
}

impl ParseMode {
    /// Parses a `parse_mode` value case-insensitively; `None` when Telegram would reject it.
    pub(crate) fn parse(s: &str) -> Option<ParseMode> {
        let matches = |mode: &ParseMode| format!("{mode:?}").eq_ignore_ascii_case(s);
        [Self::Html, Self::MarkdownV2, Self::Markdown].into_iter().find(matches)
    }
}

/// One `MessageEntity`, with offset and length in UTF-16 code units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entity {
    /// Telegram's type string, e.g. "bold", "text_link", "bot_command".
    pub(crate) kind: String,
    /// Start in UTF-16 code units.
    pub(crate) offset: usize,
    /// Length in UTF-16 code units.
    pub(crate) length: usize,
    /// Target of a "text_link".
    pub(crate) url: Option<String>,
    /// Programming language of a "pre".
    pub(crate) language: Option<String>,
    /// Mentioned user of a "text_mention".
    pub(crate) user_id: Option<i64>,
    /// Sticker id of a "custom_emoji".
    pub(crate) custom_emoji_id: Option<String>,
}

impl Entity {
    fn new(kind: &str, offset: usize, length: usize) -> Self {
        let (url, language, user_id, custom_emoji_id) = (None, None, None, None);
        let kind = kind.to_string();
        Entity { kind, offset, length, url, language, user_id, custom_emoji_id }
    }

    fn end(&self) -> usize {
        self.offset + self.length
    }

    fn span(&self) -> (usize, usize) {
        (self.offset, self.end())
    }
}

/// Plain text and entities produced by [`parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Formatted {
    /// Text with the markup removed (not trimmed).
    pub(crate) text: String,
    /// Entities sorted by offset, longer first.
    pub(crate) entities: Vec<Entity>,
}

/// Parses `text` in `mode`; Err carries Telegram's detail, the caller prefixes "Bad Request: can't parse entities: ".
pub(crate) fn parse(text: &str, mode: ParseMode) -> Result<Formatted, String> {
    let (s, mut out) = (text.as_bytes(), Out::default());
    match mode {
        ParseMode::Html => parse_html(s, &mut out)?,
        ParseMode::MarkdownV2 => parse_markdown_v2(s, &mut out)?,
        ParseMode::Markdown => parse_markdown(s, &mut out)?,
    }
    // Markup is only ever removed at ASCII bytes, so the buffer is valid UTF-8.
    let text = String::from_utf8(out.buf).unwrap_or_else(|e| lossy(e.as_bytes()));
    let entities = fix_nesting(out.entities);
    Ok(Formatted { text, entities })
}

/// Length of `s` in UTF-16 code units (Telegram's unit for limits and offsets).
pub(crate) fn utf16_len(s: &str) -> usize {
    s.encode_utf16().count()
}

/// Entities Telegram detects by itself in plain text: bot_command ("/start", "/start@my_bot", only at a word start, command chars [A-Za-z0-9_], up to 64 chars), mention ("@username", 5-32 chars), url (http:// or https:// ... up to whitespace), hashtag ("#tag"). Sorted by offset.
pub(crate) fn detect(text: &str) -> Vec<Entity> {
    let chars: Vec<char> = text.chars().collect();
    let (mut pos, mut total) = (Vec::new(), 0);
    for c in &chars {
        pos.push(total);
        total += c.len_utf16();
    }
    let u16_at = |k: usize| pos.get(k).copied().unwrap_or(total);
    let get = |k: usize| chars.get(k).copied();
    let stop = |c: Option<char>| c.is_some_and(|c| is_word(c) || "/<>".contains(c));
    let (mut found, mut k) = (Vec::new(), 0);
    while k < chars.len() {
        let prev = k.checked_sub(1).and_then(get);
        let span = match get(k) {
            Some('/') if !stop(prev) => {
                let mut end = run(&chars, k + 1, is_command_char);
                let mut ok = (1..=64).contains(&(end - k - 1));
                if get(end) == Some('@') {
                    let bot_end = run(&chars, end + 1, is_command_char);
                    ok &= (3..=32).contains(&(bot_end - end - 1));
                    end = bot_end;
                }
                (ok && !stop(get(end))).then_some(("bot_command", end))
            }
            Some('@') if !prev.is_some_and(is_word) => {
                let end = run(&chars, k + 1, is_command_char);
                let ok = (5..=32).contains(&(end - k - 1)) && !get(end).is_some_and(is_word);
                ok.then_some(("mention", end))
            }
            Some('#') if !prev.is_some_and(is_hashtag_char) => {
                let end = run(&chars, k + 1, is_hashtag_char);
                let body = chars.get(k + 1..end).unwrap_or_default();
                let ok = get(end) != Some('#') && body.iter().any(|c| c.is_alphabetic());
                ok.then_some(("hashtag", k + 1 + body.len().min(256)))
            }
            Some('h' | 'H') if !prev.is_some_and(is_word) => url_end(&chars, k).map(|e| ("url", e)),
            _ => None,
        };
        if let Some((kind, end)) = span {
            found.push(Entity::new(kind, u16_at(k), u16_at(end) - u16_at(k)));
        }
        k = span.map_or(k + 1, |(_, end)| end.max(k + 1));
    }
    found
}

/// Adds auto-detected entities to explicit ones as Telegram does: an auto entity is dropped only if it overlaps an explicit entity other than bold/italic/underline/strikethrough/spoiler/blockquote; sorted by offset, longer first.
pub(crate) fn merge(explicit: Vec<Entity>, auto: Vec<Entity>) -> Vec<Entity> {
    let blocking = |e: &&Entity| !is_splittable(&e.kind) && !e.kind.ends_with("blockquote");
    let spans: Vec<(usize, usize)> = explicit.iter().filter(blocking).map(Entity::span).collect();
    let free = |a: &Entity| spans.iter().all(|&(s, t)| a.end() <= s || a.offset >= t);
    let mut all = explicit;
    all.extend(auto.into_iter().filter(free));
    sort_entities(&mut all);
    all
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn is_command_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn is_hashtag_char(c: char) -> bool {
    is_word(c) || c == '\u{200c}' || c == '\u{b7}'
}

/// First index from `k` whose char fails `f` (or the end).
fn run(chars: &[char], k: usize, f: impl Fn(char) -> bool) -> usize {
    let stops = |j: &usize| !chars.get(*j).is_some_and(|&c| f(c));
    (k..chars.len()).find(stops).unwrap_or(chars.len().max(k))
}

/// End (char index) of an http(s) URL starting at `k`, without trailing punctuation.
fn url_end(chars: &[char], k: usize) -> Option<usize> {
    let head: String = chars.iter().skip(k).take(8).collect();
    let scheme = ["http://", "https://"].into_iter().find(|p| head.to_ascii_lowercase().starts_with(p));
    let host = k + scheme?.len();
    let mut end = run(chars, host, |c| !c.is_whitespace());
    let body = chars.get(k..end).unwrap_or_default();
    let count = |ch: char| body.iter().filter(|&&c| c == ch).count();
    let (opened, mut closed) = (count('('), count(')'));
    // Trailing punctuation and unbalanced closing parentheses are not part of the URL.
    while end > host {
        match chars.get(end - 1) {
            Some('.' | ',' | ':' | ';' | '!' | '?' | '"' | '\'') => {}
            Some(')') if opened < closed => closed -= 1,
            _ => break,
        }
        end -= 1;
    }
    (end > host && chars.get(host) != Some(&'/')).then_some(end)
}

const SPLITTABLE: [&str; 5] = ["bold", "italic", "underline", "strikethrough", "spoiler"];

fn is_splittable(kind: &str) -> bool {
    SPLITTABLE.contains(&kind)
}

/// TDLib's order: by offset, longer first, then by type priority.
fn sort_entities(entities: &mut [Entity]) {
    let priority = |kind: &str| {
        let rank = SPLITTABLE.iter().position(|&s| s == kind);
        match kind {
            "blockquote" | "expandable_blockquote" => 0,
            "pre" => 10,
            "code" => 20,
            "text_link" | "text_mention" => 49,
            "custom_emoji" => 99,
            _ => rank.map_or(50, |r| 90 + r),
        }
    };
    entities.sort_by_key(|e| (e.offset, Reverse(e.length), priority(&e.kind)));
}

/// Drops empty entities and anything inside code/pre; splits formatting around code/pre.
fn fix_nesting(mut entities: Vec<Entity>) -> Vec<Entity> {
    entities.retain(|e| e.length > 0);
    sort_entities(&mut entities);
    let is_block = |e: &Entity| e.kind == "code" || e.kind == "pre";
    let (blocks, rest): (Vec<Entity>, Vec<Entity>) = entities.into_iter().partition(is_block);
    let inside = |spans: &[(usize, usize)], e: &Entity| spans.iter().any(|&(a, b)| a <= e.offset && e.end() <= b);
    let (mut spans, mut kept) = (Vec::new(), Vec::new());
    for mut e in blocks {
        if !inside(&spans, &e) {
            spans.push(e.span());
            e.language = e.language.take().filter(|_| e.kind == "pre");
            kept.push(e);
        }
    }
    for e in rest {
        if !is_splittable(&e.kind) {
            if !inside(&spans, &e) {
                kept.push(e);
            }
            continue;
        }
        let mut pieces = vec![e.span()];
        for &(a, b) in &spans {
            let cut = |&(s, t): &(usize, usize)| [(s, t.min(a)), (s.max(b), t)];
            pieces = pieces.iter().flat_map(cut).filter(|(s, t)| s < t).collect();
        }
        for (s, t) in pieces {
            let mut piece = e.clone();
            (piece.offset, piece.length) = (s, t - s);
            kept.push(piece);
        }
    }
    sort_entities(&mut kept);
    kept
}

/// Output text being built, with its UTF-16 length and the entities found so far.
#[derive(Default)]
struct Out {
    buf: Vec<u8>,
    utf16: usize,
    entities: Vec<Entity>,
    bad_surrogate: bool,
}

/// A tag or MarkdownV2 entity waiting for its end.
struct Open {
    /// Lower-cased HTML tag, or TDLib's MarkdownV2 type name ("Bold", "TextUrl", ...).
    name: String,
    /// Tag argument (href, class, emoji id) or pre language; empty if none.
    arg: String,
    /// UTF-16 offset and byte length of the output when opened.
    offset: usize,
    begin: usize,
    /// Byte offset of the markup in the input.
    byte: usize,
}

impl Out {
    fn byte(&mut self, c: u8) {
        if c & 0xC0 != 0x80 {
            self.utf16 += 1 + usize::from(c >= 0xF0);
        }
        self.buf.push(c);
    }

    /// Entity of `kind` from `offset` to the current end of the text.
    fn entity(&self, kind: &str, offset: usize) -> Entity {
        Entity::new(kind, offset, self.utf16.saturating_sub(offset))
    }

    /// Starts an entity `name` whose markup is at input byte `byte`.
    fn open(&self, name: &str, byte: usize) -> Open {
        let (name, arg) = (name.to_string(), String::new());
        Open { name, arg, offset: self.utf16, begin: self.buf.len(), byte }
    }

    /// Appends the HTML text at `s[i]` (an entity or one byte); returns the next position.
    fn html_text(&mut self, s: &[u8], i: usize) -> usize {
        let Some((code, next)) = (at(s, i) == b'&').then(|| html_entity(s, i)).flatten() else {
            self.byte(at(s, i));
            return i + 1;
        };
        let ch = char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER);
        self.bad_surrogate |= (0xD800..0xE000).contains(&code);
        ch.encode_utf8(&mut [0; 4]).bytes().for_each(|b| self.byte(b));
        next
    }
}

/// Byte at `i`, or 0 past the end (TDLib relies on the C string terminator).
fn at(s: &[u8], i: usize) -> u8 {
    s.get(i).copied().unwrap_or(0)
}

/// First position from `i` whose byte fails `f` (or the end).
fn skip(s: &[u8], i: usize, f: impl Fn(u8) -> bool) -> usize {
    (i..s.len()).find(|&j| !f(at(s, j))).unwrap_or(s.len().max(i))
}

fn slice(s: &[u8], from: usize, to: usize) -> &[u8] {
    s.get(from..to).unwrap_or_default()
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `Err(err())` unless `ok`.
fn ensure(ok: bool, err: impl FnOnce() -> String) -> Result<(), String> {
    if ok { Ok(()) } else { Err(err()) }
}

/// TDLib's `is_space`, which also treats the terminator as space.
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n' | 0 | 0x0b | 0x0c)
}

fn is_inner_space(c: u8) -> bool {
    c != 0 && is_space(c)
}

/// A non-zero id in TDLib's `to_integer_safe` syntax (optional '-', digits only).
fn parse_id(v: &str) -> Option<i64> {
    v.parse::<i64>().ok().filter(|&n| n != 0 && !v.starts_with('+'))
}

/// The `id` query parameter of a lower-cased `tg://{host}?...` link.
fn tg_link_id<'a>(lower: &'a str, host: &str) -> Option<&'a str> {
    let rest = lower.strip_prefix("tg:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest).strip_prefix(host)?;
    let query = rest.strip_prefix('/').unwrap_or(rest).strip_prefix('?')?;
    let query = query.split('#').next().unwrap_or_default();
    let param = query.split('&').find(|p| p.split('=').next() == Some("id"))?;
    Some(param.split_once('=').map_or("", |(_, v)| v))
}

/// Custom emoji id of a `tg://emoji?id=N` link, with TDLib's errors.
fn custom_emoji_id(url: &str) -> Result<String, String> {
    let lower = url.to_ascii_lowercase();
    let rest = lower.strip_prefix("tg:").ok_or("Custom emoji URL must have scheme tg")?;
    let host_ok = rest.strip_prefix("//").unwrap_or(rest).starts_with("emoji");
    ensure(host_ok, || "Custom emoji URL must have host \"emoji\"".into())?;
    let id = tg_link_id(&lower, "emoji").ok_or("Custom emoji URL must have an emoji identifier")?;
    let id = parse_id(id).ok_or("Invalid custom emoji identifier specified")?;
    Ok(id.to_string())
}

/// Fills `e` as a text_mention or text_link to `url`; `None` when Telegram drops the link.
fn link_kind(e: &mut Entity, url: &str) -> Option<&'static str> {
    let lower = url.to_ascii_lowercase();
    e.user_id = tg_link_id(&lower, "user").and_then(parse_id).filter(|&id| id > 0);
    if e.user_id.is_some() {
        return Some("text_mention");
    }
    e.url = Some(checked_link(url)?);
    Some("text_link")
}

/// Validates and normalises a link like TDLib's `get_checked_link`.
fn checked_link(url: &str) -> Option<String> {
    if url.is_empty() || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    let lower = url.to_ascii_lowercase();
    let host_len = |rest: &str| rest.find(['/', '?', '#']).unwrap_or(rest.len());
    if let Some(rest) = lower.strip_prefix("tg:").or(lower.strip_prefix("ton:")) {
        // tg: and ton: links are kept when their host is a plain name.
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let host = rest.get(..host_len(rest)).unwrap_or_default();
        let valid = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
        return (!host.is_empty() && host.bytes().all(valid)).then(|| url.to_string());
    }
    let (scheme, rest) = match lower.split_once("://") {
        Some((scheme @ ("http" | "https"), _)) => (scheme, url.get(scheme.len() + 3..)?),
        Some(_) => return None,
        None => ("http", url),
    };
    let (authority, path) = rest.split_at(host_len(rest));
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = host.split_once(':').unwrap_or((host, ""));
    let host_char = |c: char| !c.is_ascii() || c.is_ascii_alphanumeric() || "-._~".contains(c);
    let host_ok = host.contains('.') && !host.starts_with('.') && host.chars().all(host_char);
    let port_ok = port.is_empty() || port.parse::<u16>().is_ok_and(|p| p > 0);
    let slash = if path.starts_with('/') { "" } else { "/" };
    let authority = authority.to_lowercase();
    (host_ok && port_ok).then(|| format!("{scheme}://{authority}{slash}{path}"))
}

#[cfg(test)]
mod tests;
