//! Telegram-compatible parsing of formatted text (`parse_mode`) into plain text plus
//! `MessageEntity` values, and detection of the entities Telegram finds by itself.
//! The parsers mirror TDLib (which the Bot API server runs), so offsets, dropped entities
//! and error details match Telegram. Where the Bot API docs are silent we copy TDLib: in
//! HTML, unknown named entities (`&nbsp;`), a bare `&` and a stray `>` stay literal and the
//! `;` ending an entity is optional, while a `<` that does not open a supported tag is an
//! error; link URLs are normalised (`example.com` becomes `http://example.com/`) and links
//! with an invalid URL are silently dropped; entities nested inside `code`/`pre` are removed
//! and bold/italic/underline/strikethrough/spoiler are split around them, as the documented
//! nesting rules require.

use std::cmp::Reverse;

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

#[rustfmt::skip]
const HTML_TAGS: [&str; 16] = [
    "a", "b", "strong", "i", "em", "s", "strike", "del", "u", "ins", "tg-spoiler", "tg-emoji", "span", "pre", "code",
    "blockquote",
];

/// Decodes the HTML entity at `s[pos] == b'&'`: code point and the position after it.
fn html_entity(s: &[u8], pos: usize) -> Option<(u32, usize)> {
    let (code, end) = if at(s, pos + 1) == b'#' {
        let radix = if at(s, pos + 2) == b'x' { 16 } else { 10 };
        let start = pos + 2 + usize::from(radix == 16);
        let end = skip(s, start, |c| char::from(c).is_digit(radix));
        let mut value = 0u64;
        for &c in slice(s, start, end) {
            let digit = char::from(c).to_digit(radix).unwrap_or_default();
            value = value.saturating_mul(radix.into()).saturating_add(digit.into());
        }
        if value == 0 || value >= 0x10FFFF || end - pos >= 10 {
            return None;
        }
        (u32::try_from(value).ok()?, end)
    } else {
        let end = skip(s, pos + 1, |c| c.is_ascii_alphabetic());
        let names: [(&[u8], char); 4] = [(b"lt", '<'), (b"gt", '>'), (b"amp", '&'), (b"quot", '"')];
        let (_, ch) = names.into_iter().find(|(n, _)| *n == slice(s, pos + 1, end))?;
        (u32::from(ch), end)
    };
    Some((code, end + usize::from(at(s, end) == b';')))
}

fn parse_html(s: &[u8], out: &mut Out) -> Result<(), String> {
    let mut stack: Vec<Open> = Vec::new();
    let mut i = 0;
    while i < s.len() {
        let begin = i;
        if at(s, i) != b'<' {
            i = out.html_text(s, i);
        } else if at(s, i + 1) != b'/' {
            let open;
            (open, i) = html_start_tag(s, begin, out)?;
            stack.push(open);
        } else {
            let Some(open) = stack.pop() else {
                return Err(format!("Unexpected end tag at byte offset {begin}"));
            };
            i = skip(s, i + 2, |c| !is_space(c) && c != b'>');
            let name = lossy(slice(s, begin + 2, i)).to_ascii_lowercase();
            i = skip(s, i, is_inner_space);
            ensure(at(s, i) == b'>', || format!("Unclosed end tag at byte offset {begin}"))?;
            let tag = &open.name;
            ensure(name.is_empty() || name == *tag, || {
                let found = format!("found \"</{name}>\"");
                format!("Unmatched end tag at byte offset {begin}, expected \"</{tag}>\", {found}")
            })?;
            i += 1;
            if out.utf16 > open.offset {
                close_html_tag(out, open)?;
            }
        }
    }
    if let Some(open) = stack.last() {
        let tag = &open.name;
        return Err(format!("Can't find end tag corresponding to start tag \"{tag}\""));
    }
    let detail = "Text contains invalid Unicode characters after decoding HTML entities";
    ensure(!out.bad_surrogate, || format!("{detail}, check for unmatched surrogate code units"))
}

/// Parses the start tag at `s[begin] == b'<'`; returns it and the position after its '>'.
fn html_start_tag(s: &[u8], begin: usize, out: &Out) -> Result<(Open, usize), String> {
    let mut i = skip(s, begin + 1, |c| !is_space(c) && c != b'>');
    ensure(at(s, i) != 0, || format!("Unclosed start tag at byte offset {begin}"))?;
    let mut open = out.open(&lossy(slice(s, begin + 1, i)).to_ascii_lowercase(), begin);
    let tag = open.name.clone();
    let known = HTML_TAGS.contains(&tag.as_str());
    ensure(known, || format!("Unsupported start tag \"{tag}\" at byte offset {begin}"))?;
    let unclosed = || format!("Unclosed start tag \"{tag}\" at byte offset {begin}");
    loop {
        i = skip(s, i, is_inner_space);
        if at(s, i) == b'>' {
            let spoiler = tag != "span" || open.arg == "spoiler";
            let class = "must have class \"tg-spoiler\"";
            ensure(spoiler, || format!("Tag \"span\" {class} at byte offset {begin}"))?;
            return Ok((open, i + 1));
        }
        let name_begin = i;
        i = skip(s, i, |c| !is_space(c) && !b"=>/\"'".contains(&c));
        let name = slice(s, name_begin, i);
        let in_tag = format!("in the tag \"{tag}\" at byte offset {begin}");
        ensure(!name.is_empty(), || format!("Empty attribute name {in_tag}"))?;
        i = skip(s, i, is_inner_space);
        ensure(at(s, i) != 0, unclosed)?;
        // A value-less attribute only matters for <blockquote expandable>.
        let mut value = String::new();
        if at(s, i) == b'=' {
            i = skip(s, i + 1, is_inner_space);
            ensure(at(s, i) != 0, unclosed)?;
            value = attribute_value(s, &mut i)?;
            ensure(at(s, i) != 0, || format!("Unclosed start tag at byte offset {begin}"))?;
        }
        let prefix = if tag == "code" { "language-" } else { "tg-" };
        match (tag.as_str(), name) {
            ("a", b"href") | ("tg-emoji", b"emoji-id") => open.arg = value,
            ("code" | "span", b"class") => open.arg = value.strip_prefix(prefix).map_or(open.arg, String::from),
            ("blockquote", b"expandable") => open.arg = "1".into(),
            _ => {}
        }
    }
}

/// Reads a quoted (entities decoded) or bare (lower-cased) attribute value at `*i`.
fn attribute_value(s: &[u8], i: &mut usize) -> Result<String, String> {
    let quote = at(s, *i);
    if quote != b'"' && quote != b'\'' {
        let begin = *i;
        *i = skip(s, begin, |c| c.is_ascii_alphanumeric() || c == b'.' || c == b'-');
        let ended = is_space(at(s, *i)) || at(s, *i) == b'>';
        ensure(ended, || format!("Unexpected end of name token at byte offset {begin}"))?;
        return Ok(lossy(slice(s, begin, *i)).to_ascii_lowercase());
    }
    let mut value = Out::default();
    *i += 1;
    while at(s, *i) != quote && at(s, *i) != 0 {
        *i = value.html_text(s, *i);
    }
    *i += usize::from(at(s, *i) == quote);
    Ok(lossy(&value.buf))
}

/// Emits the entity for a closed, non-empty HTML tag.
fn close_html_tag(out: &mut Out, open: Open) -> Result<(), String> {
    let (tag, arg) = (open.name.as_str(), open.arg);
    let mut e = out.entity("", open.offset);
    let kind = match tag {
        "b" | "strong" => "bold",
        "i" | "em" => "italic",
        "u" | "ins" => "underline",
        "s" | "strike" | "del" => "strikethrough",
        "tg-spoiler" | "span" => "spoiler",
        "blockquote" if arg.is_empty() => "blockquote",
        "blockquote" => "expandable_blockquote",
        "tg-emoji" => {
            let id = parse_id(&arg).ok_or("Invalid custom emoji identifier specified")?;
            e.custom_emoji_id = Some(id.to_string());
            "custom_emoji"
        }
        "a" => {
            // Without href the link text itself is the URL.
            let text = lossy(out.buf.get(open.begin..).unwrap_or_default());
            let url = if arg.is_empty() { text } else { arg };
            match link_kind(&mut e, &url) {
                Some(kind) => kind,
                None => return Ok(()),
            }
        }
        _ => {
            // <pre><code class="language-x"> (in either order) is one pre entity with a language.
            let language = Some(arg).filter(|a| tag == "code" && !a.is_empty());
            let same_span = |l: &&mut Entity| l.span() == e.span();
            if let Some(last) = out.entities.last_mut().filter(same_span) {
                if tag == "pre" && last.kind == "code" && last.language.is_some() {
                    last.kind = "pre".into();
                    return Ok(());
                }
                if tag == "code" && last.kind == "pre" && last.language.is_none() {
                    last.language = language;
                    return Ok(());
                }
            }
            e.language = language;
            if tag == "pre" { "pre" } else { "code" }
        }
    };
    e.kind = kind.into();
    out.entities.push(e);
    Ok(())
}

fn reserved(c: u8) -> String {
    let c = char::from(c);
    format!("Character '{c}' is reserved and must be escaped with the preceding '\\'")
}

/// Reads the `(...)` after `s[*i] == b']'` (`\` escapes), leaving `*i` at the ')'.
fn md2_url(s: &[u8], i: &mut usize, what: &str) -> Result<String, String> {
    *i += 2;
    let (begin, mut url) = (*i, Vec::new());
    while *i < s.len() && at(s, *i) != b')' {
        *i += usize::from(at(s, *i) == b'\\' && (1..=126).contains(&at(s, *i + 1)));
        url.push(at(s, *i));
        *i += 1;
    }
    ensure(at(s, *i) == b')', || format!("Can't find end of {what} at byte offset {begin}"))?;
    Ok(lossy(&url))
}

/// Language after an opening pre fence (empty if none) and where the content starts.
fn pre_start(s: &[u8], i: usize) -> (String, usize) {
    let end = skip(s, i, |c| !is_space(c) && c != b'`');
    let has_language = i != end && end < s.len() && at(s, end) != b'`';
    let (language, i) = if has_language { (lossy(slice(s, i, end)), end) } else { (String::new(), i) };
    // One line break right after the opening is skipped.
    let (a, b) = (at(s, i), at(s, i + 1));
    let newline = |c: u8| c == b'\n' || c == b'\r';
    let skipped = if !newline(a) {
        0
    } else if newline(b) && a != b {
        2
    } else {
        1
    };
    (language, i + skipped)
}

/// Bot API type of a MarkdownV2 entity, from TDLib's name for it.
fn md_kind(name: &str) -> &str {
    match name {
        "TextUrl" => "text_link",
        "PreCode" => "pre",
        "CustomEmoji" => "custom_emoji",
        "ExpandableBlockQuote" => "expandable_blockquote",
        _ => name,
    }
}

const MD2_RESERVED: &[u8] = b"_*[]()~`>#+-=|{}.!\n";

fn cant_find(o: &Open) -> String {
    format!("Can't find end of {} entity at byte offset {}", o.name, o.byte)
}

fn parse_markdown_v2(s: &[u8], out: &mut Out) -> Result<(), String> {
    let mut stack: Vec<Open> = Vec::new();
    let (mut have_quote, mut can_start_quote, mut i) = (false, true, 0);
    while i < s.len() {
        let (c, next, next2) = (at(s, i), at(s, i + 1), at(s, i + 2));
        if c == b'\\' && (1..=126).contains(&next) {
            out.byte(next);
            if next != b'\r' {
                can_start_quote = next == b'\n';
            }
            i += 2;
            continue;
        }
        let top = stack.last().map(|o| o.name.as_str());
        let in_code = matches!(top, Some("Code" | "Pre" | "PreCode"));
        let special: &[u8] = if in_code { b"`" } else { MD2_RESERVED };
        if !special.contains(&c) {
            can_start_quote &= (c & 0xC0) == 0x80 || c == b'\r';
            out.byte(c);
            i += 1;
            continue;
        }
        let is_end = match top {
            None => false,
            Some(_) if have_quote && c == b'\n' && next != b'>' => true,
            Some("Bold") => c == b'*',
            Some("Italic") => c == b'_' && next != b'_',
            Some("Underline") => c == b'_' && next == b'_',
            Some("Strikethrough") => c == b'~',
            Some("Spoiler") => c == b'|' && next == b'|',
            Some("Code") => c == b'`',
            Some("Pre" | "PreCode") => c == b'`' && next == b'`' && next2 == b'`',
            Some("TextUrl" | "CustomEmoji") => c == b']',
            Some(_) => false, // a BlockQuote ends only at a line break
        };
        if !is_end {
            let (name, width) = match c {
                b'_' if next == b'_' => ("Underline", 2),
                b'_' => ("Italic", 1),
                b'*' => ("Bold", 1),
                b'~' => ("Strikethrough", 1),
                b'|' if next == b'|' => ("Spoiler", 2),
                b'[' => ("TextUrl", 1),
                b'`' if next == b'`' && next2 == b'`' => ("Pre", 3),
                b'`' => ("Code", 1),
                b'!' if next == b'[' => ("CustomEmoji", 2),
                b'>' if can_start_quote && !have_quote => ("BlockQuote", 1),
                b'>' if can_start_quote => ("", 1), // continues the open quotation
                b'\n' => ("", 1),
                _ => return Err(reserved(c)),
            };
            if c == b'\n' {
                out.byte(c);
                can_start_quote = true;
            }
            have_quote |= name == "BlockQuote";
            let mut open = out.open(name, i);
            i += width;
            if name == "Pre" {
                (open.arg, i) = pre_start(s, i);
                if !open.arg.is_empty() {
                    open.name = "PreCode".into();
                }
            }
            if !name.is_empty() {
                stack.push(open);
            }
            continue;
        }
        let Some(mut open) = stack.pop() else { break };
        if c == b'\n' && open.name != "BlockQuote" {
            // "||" right before the end of a quotation's last line makes it expandable.
            let after_cr = open.byte + 3 == i && out.buf.last() == Some(&b'\r');
            let mark = open.name == "Spoiler" && (open.byte + 2 == i || after_cr);
            ensure(mark, || cant_find(&open))?;
            let Some(quote) = stack.pop() else { break };
            ensure(quote.name == "BlockQuote", || cant_find(&quote))?;
            open = Open { name: "ExpandableBlockQuote".into(), ..quote };
        }
        let mut e = out.entity(md_kind(&open.name).to_lowercase().as_str(), open.offset);
        let mut keep = e.length > 0;
        match open.name.as_str() {
            "Underline" | "Spoiler" => i += 1,
            "Pre" | "PreCode" => i += 2,
            "TextUrl" => {
                let url = match next {
                    b'(' => md2_url(s, &mut i, "a URL")?,
                    _ => lossy(out.buf.get(open.begin..).unwrap_or_default()),
                };
                let kind = link_kind(&mut e, &url);
                keep &= kind.is_some();
                e.kind = kind.unwrap_or_default().into();
            }
            "CustomEmoji" => {
                let msg = "Custom emoji entity must contain a tg://emoji URL";
                ensure(next == b'(', || msg.into())?;
                let url = md2_url(s, &mut i, "a custom emoji URL")?;
                e.custom_emoji_id = Some(custom_emoji_id(&url)?);
            }
            "BlockQuote" | "ExpandableBlockQuote" => {
                (have_quote, can_start_quote, keep) = (false, true, true);
                out.byte(c);
                e.length = out.utf16 - e.offset;
            }
            _ => {}
        }
        if keep {
            e.language = Some(open.arg).filter(|l| !l.is_empty());
            out.entities.push(e);
        }
        i += 1;
    }
    if have_quote {
        let marked = |o: &mut Open| o.name == "Spoiler" && o.byte + 2 == s.len();
        let expandable = stack.pop_if(marked).is_some();
        if let Some(open) = stack.pop_if(|o| o.name == "BlockQuote") {
            let prefix = if expandable { "expandable_" } else { "" };
            out.entities.push(out.entity(&format!("{prefix}blockquote"), open.offset));
        }
    }
    stack.last().map_or(Ok(()), |open| Err(cant_find(open)))
}

fn parse_markdown(s: &[u8], out: &mut Out) -> Result<(), String> {
    let mut i = 0;
    while i < s.len() {
        let c = at(s, i);
        let escaped = c == b'\\' && b"_*`[".contains(&at(s, i + 1));
        if escaped || !b"_*`[".contains(&c) {
            i += usize::from(escaped);
            out.byte(at(s, i));
            i += 1;
            continue;
        }
        let (begin, end_char) = (i, if c == b'[' { b']' } else { c });
        let pre = c == b'`' && at(s, i + 1) == b'`' && at(s, i + 2) == b'`';
        let mut open = out.open("", begin);
        (open.arg, i) = if pre { pre_start(s, i + 3) } else { (String::new(), i + 1) };
        let pre_end = |i: usize| at(s, i + 1) == b'`' && at(s, i + 2) == b'`';
        while i < s.len() && (at(s, i) != end_char || (pre && !pre_end(i))) {
            out.byte(at(s, i));
            i += 1;
        }
        let unclosed = || format!("Can't find end of the entity starting at byte offset {begin}");
        ensure(i < s.len(), unclosed)?;
        let mut e = out.entity("", open.offset);
        if e.length > 0 {
            let kind = match c {
                b'_' => "italic",
                b'*' => "bold",
                b'`' if pre => "pre",
                b'`' => "code",
                _ => {
                    let url = if at(s, i + 1) == b'(' {
                        let url_begin = i + 2;
                        i = skip(s, url_begin, |c| c != b')');
                        lossy(slice(s, url_begin, i))
                    } else {
                        lossy(slice(s, begin + 1, i))
                    };
                    link_kind(&mut e, &url).unwrap_or_default()
                }
            };
            (e.kind, e.language) = (kind.into(), Some(open.arg).filter(|l| !l.is_empty()));
            if !kind.is_empty() {
                out.entities.push(e);
            }
        }
        i += if pre { 3 } else { 1 };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ParseMode::{Html, Markdown, MarkdownV2};

    /// Entities as "kind:offset+length[=extra]" separated by spaces.
    fn show(entities: &[Entity]) -> String {
        let mut shown = Vec::new();
        for e in entities {
            let id = e.user_id.map(|id| id.to_string());
            let extras = [&e.url, &e.language, &id, &e.custom_emoji_id];
            let extra = extras.into_iter().flatten().map(|x| format!("={x}")).collect::<String>();
            shown.push(format!("{}:{}+{}{extra}", e.kind, e.offset, e.length));
        }
        shown.join(" ")
    }

    /// `"text" entities...` on success, `ERR detail` on failure.
    fn run(mode: ParseMode, src: &str) -> String {
        match parse(src, mode) {
            Ok(f) => format!("{:?} {}", f.text, show(&f.entities)).trim_end().to_string(),
            Err(e) => format!("ERR {e}"),
        }
    }

    fn check(mode: ParseMode, cases: &[(&str, &str)]) {
        for (src, want) in cases {
            assert_eq!(run(mode, src), *want, "input {src:?}");
        }
    }

    #[test]
    fn parse_modes_and_utf16() {
        assert_eq!(ParseMode::parse("html"), Some(Html));
        assert_eq!(ParseMode::parse("MARKDOWNV2"), Some(MarkdownV2));
        assert_eq!(ParseMode::parse("Markdown"), Some(Markdown));
        assert_eq!(ParseMode::parse("md"), None);
        assert_eq!((utf16_len("abc"), utf16_len("😀"), utf16_len("привет")), (3, 2, 6));
    }

    #[test]
    #[rustfmt::skip]
    fn html_tags() {
        for (tags, kind) in [
            ("b strong", "bold"),
            ("i em", "italic"),
            ("u ins", "underline"),
            ("s strike del", "strikethrough"),
            ("tg-spoiler", "spoiler"),
            ("code", "code"),
            ("pre", "pre"),
            ("blockquote", "blockquote"),
        ] {
            for tag in tags.split(' ') {
                assert_eq!(run(Html, &format!("x <{tag}>abc</{tag}> y")), format!("\"x abc y\" {kind}:2+3"));
            }
        }
        check(Html, &[
            (r#"<span class="tg-spoiler">s</span><B>b</B>"#, r#""sb" spoiler:0+1 bold:1+1"#),
            ("<blockquote expandable>q</blockquote>", r#""q" expandable_blockquote:0+1"#),
            (r#"<a href="https://ex.com">site</a> <a href='tg://user?id=42'>bob</a>"#, r#""site bob" text_link:0+4=https://ex.com/ text_mention:5+3=42"#),
            ("<a href=telegram.org>t</a><a>http://a.io/x</a><a href=x>y</a>", r#""thttp://a.io/xy" text_link:0+1=http://telegram.org/ text_link:1+13=http://a.io/x"#),
            (r#"<pre><code class="language-rust">fn x</code></pre>"#, r#""fn x" pre:0+4=rust"#),
            (r#"<pre><code>plain</code></pre><code class="language-c">c</code>"#, r#""plainc" pre:0+5 code:5+1"#),
            (r#"<tg-emoji emoji-id="5368324170671202286">👍</tg-emoji>"#, r#""👍" custom_emoji:0+2=5368324170671202286"#),
            ("<i>it <b>both</b></i>", r#""it both" italic:0+7 bold:3+4"#),
            ("<b><i>x</i></b>", r#""x" bold:0+1 italic:0+1"#),
            ("<code><b>x</b></code>", r#""x" code:0+1"#),
            ("<b>a<code>c</code>d</b>", r#""acd" bold:0+1 code:1+1 bold:2+1"#),
            ("&lt;b&gt; &amp; &quot; &#65;&#x42; &nbsp; & a > b &amp", r#""<b> & \" AB &nbsp; & a > b &""#),
            ("&#x1F600;<b>x</b>", r#""😀x" bold:2+1"#),
            (r#"<a href="http://x.io/?a=1&amp;b=2">l</a>"#, r#""l" text_link:0+1=http://x.io/?a=1&b=2"#),
            ("😀 <b>hi</b>", r#""😀 hi" bold:3+2"#),
            ("привет <i>мир😀</i>", r#""привет мир😀" italic:7+5"#),
            ("<b></b>x<b>y</>", r#""xy" bold:1+1"#),
        ]);
    }

    #[test]
    #[rustfmt::skip]
    fn html_errors() {
        check(Html, &[
            ("a <foo>b</foo>", r#"ERR Unsupported start tag "foo" at byte offset 2"#),
            ("a < b", r#"ERR Unsupported start tag "" at byte offset 2"#),
            ("a <b", "ERR Unclosed start tag at byte offset 2"),
            ("<b>bold", r#"ERR Can't find end tag corresponding to start tag "b""#),
            ("<b><i>x</b></i>", r#"ERR Unmatched end tag at byte offset 7, expected "</i>", found "</b>""#),
            ("x</b>", "ERR Unexpected end tag at byte offset 1"),
            ("<b>x</b", "ERR Unclosed end tag at byte offset 4"),
            (r#"<a href="x"/>"#, r#"ERR Empty attribute name in the tag "a" at byte offset 0"#),
            ("<a href=x/>", "ERR Unexpected end of name token at byte offset 8"),
            ("<a href", r#"ERR Unclosed start tag "a" at byte offset 0"#),
            (r#"<a href="x"#, "ERR Unclosed start tag at byte offset 0"),
            ("<span>x</span>", r#"ERR Tag "span" must have class "tg-spoiler" at byte offset 0"#),
            ("<tg-emoji emoji-id=x>👍</tg-emoji>", "ERR Invalid custom emoji identifier specified"),
            ("&#xD800;", "ERR Text contains invalid Unicode characters after decoding HTML entities, check for unmatched surrogate code units"),
        ]);
    }

    #[test]
    #[rustfmt::skip]
    fn markdown_v2() {
        check(MarkdownV2, &[
            (r"*bold \*text* _it_ __u__ ~s~ ||sp|| `c\`d`", r#""bold *text it u s sp c`d" bold:0+10 italic:11+2 underline:14+1 strikethrough:16+1 spoiler:18+2 code:21+3"#),
            (r"[l](http://a.io/\)) ![👍](tg://emoji?id=5) [bob](tg://user?id=7) [x](nonsense)", r#""l 👍 bob x" text_link:0+1=http://a.io/) custom_emoji:2+2=5 text_mention:5+3=7"#),
            ("😀 *hi* **x", r#""😀 hi x" bold:3+2"#),
            ("```python\nprint(1) # *not bold*\n```", r#""print(1) # *not bold*\n" pre:0+22=python"#),
            ("```\nx\\`y``` `a_b.c`", r#""x`y a_b.c" pre:0+3 code:4+5"#),
            (">quote\n>more\nafter", r#""quote\nmore\nafter" blockquote:0+11"#),
            ("**>hidden\n>text||", r#""hidden\ntext" expandable_blockquote:0+11"#),
            ("**>a||\nb", r#""a\nb" expandable_blockquote:0+2"#),
            ("a\\", r#""a\\""#),
        ]);
        let docs = "*bold _italic bold ~italic bold strikethrough ||italic bold strikethrough spoiler||~ __underline italic bold___ bold*";
        let kinds: Vec<String> = ok_entities(docs).into_iter().map(|e| e.kind).collect();
        assert_eq!(kinds, ["bold", "italic", "strikethrough", "spoiler", "underline"]);
        assert_eq!(ok_entities("___a_\r__").len(), 2);
        for c in "_*[]()~`>#+-=|{}.!".chars() {
            assert_eq!(run(MarkdownV2, &format!("\\{c}")), format!("{:?}", c.to_string()));
        }
    }

    fn ok_entities(src: &str) -> Vec<Entity> {
        parse(src, MarkdownV2).map(|f| f.entities).unwrap_or_default()
    }

    #[test]
    #[rustfmt::skip]
    fn markdown_v2_errors() {
        check(MarkdownV2, &[
            ("Version 1.0", r"ERR Character '.' is reserved and must be escaped with the preceding '\'"),
            ("a - b", r"ERR Character '-' is reserved and must be escaped with the preceding '\'"),
            ("a>b", r"ERR Character '>' is reserved and must be escaped with the preceding '\'"),
            ("🏟 🏟_abacaba", "ERR Can't find end of Italic entity at byte offset 9"),
            ("🏟 🏟_abac * asd ", "ERR Can't find end of Bold entity at byte offset 15"),
            ("x __u", "ERR Can't find end of Underline entity at byte offset 2"),
            ("~s", "ERR Can't find end of Strikethrough entity at byte offset 0"),
            ("||s", "ERR Can't find end of Spoiler entity at byte offset 0"),
            ("`c", "ERR Can't find end of Code entity at byte offset 0"),
            ("```c", "ERR Can't find end of Pre entity at byte offset 0"),
            ("```rust\nc", "ERR Can't find end of PreCode entity at byte offset 0"),
            ("[l", "ERR Can't find end of TextUrl entity at byte offset 0"),
            (">*a\nb*", "ERR Can't find end of Bold entity at byte offset 1"),
            ("[l](http://a.io", "ERR Can't find end of a URL at byte offset 4"),
            ("![x]", "ERR Custom emoji entity must contain a tg://emoji URL"),
            ("![x](http://a.io)", "ERR Custom emoji URL must have scheme tg"),
            ("![x](tg://emoji?id=0)", "ERR Invalid custom emoji identifier specified"),
        ]);
    }

    #[test]
    #[rustfmt::skip]
    fn markdown_legacy() {
        check(Markdown, &[
            ("*bold* _it_ `co_de` ```rust\nfn x```", r#""bold it co_de fn x" bold:0+4 italic:5+2 code:8+5 pre:14+4=rust"#),
            ("[l](http://a.io) [t.me/x] [u](tg://user?id=9)", r#""l t.me/x u" text_link:0+1=http://a.io/ text_link:2+6=http://t.me/x text_mention:9+1=9"#),
            (r"*no _nesting_* snake\_case 1.5 + (2) я _ты_ **x", r#""no _nesting_ snake_case 1.5 + (2) я ты x" bold:0+12 italic:36+2"#),
            ("hello *world", "ERR Can't find end of the entity starting at byte offset 6"),
            ("```\ncode``", "ERR Can't find end of the entity starting at byte offset 0"),
        ]);
    }

    #[test]
    fn detection_and_merge() {
        let text = "/start /help@my_bot a/b /x@ab @user_name @abc a@host.com #tag #123 https://t.me/a).";
        assert_eq!(show(&detect(text)), "bot_command:0+6 bot_command:7+12 mention:30+10 hashtag:57+4 url:67+14");
        let text = "привет 😀 /cmd и https://пример.рф/путь";
        assert_eq!(show(&detect(text)), "bot_command:10+4 url:17+22");
        assert_eq!(show(&detect("word/start @a_b http:// #_ #1")), "");
        let f = parse("<b>/start</b> <code>/help</code> @username", Html).unwrap_or_else(|e| panic!("{e}"));
        let merged = merge(f.entities, detect(&f.text));
        assert_eq!(show(&merged), "bot_command:0+6 bold:0+6 code:7+5 mention:13+9");
    }

    #[test]
    fn fuzz_never_panics_and_stays_in_bounds() {
        #[rustfmt::skip]
        const PIECES: &[&str] = &[
            "*", "_", "__", "~", "||", "|", "`", "```", "[", "]", "(", ")", "!", ">", "\\", "\n", "\r", "a", "b ", "😀", "я",
            "<b>", "</b>", "<i>", "</i>", "</>", "<", "&", "&amp;", "&#x1F600;", "&#55357;", "<a href=\"http://x.io\">", "<a>",
            "</a>", "<pre>", "</pre>", "<code class=\"language-rs\">", "</code>", "<blockquote expandable>", "</blockquote>",
            "<span class=tg-spoiler>", "</span>", "<tg-emoji emoji-id=5>", "</tg-emoji>", "/cmd", "@username", "#tag",
            "https://t.me/x", "(tg://user?id=5)", "**>", "![", "rust\n", "=", "'", "\"", " ",
        ];
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let in_bounds = |text: &str, entities: &[Entity]| {
            let len = utf16_len(text);
            entities.iter().all(|e| e.length > 0 && e.end() <= len)
        };
        for _ in 0..4000 {
            let n = next() % 24;
            let src: String = (0..n).map(|_| PIECES[(next() % PIECES.len() as u64) as usize]).collect();
            assert!(in_bounds(&src, &detect(&src)), "{src:?}");
            for mode in [Html, MarkdownV2, Markdown] {
                if let Ok(f) = parse(&src, mode) {
                    assert!(in_bounds(&f.text, &merge(f.entities, detect(&f.text))), "{mode:?} {src:?}");
                }
            }
        }
    }
}
