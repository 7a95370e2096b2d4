//! The `HTML` parse mode, as TDLib parses it: supported tags, attributes, entities like `&amp;`.

use super::{Entity, Open, Out, at, ensure, is_inner_space, is_space, link_kind, lossy, parse_id, skip, slice};

#[rustfmt::skip]
const HTML_TAGS: [&str; 16] = [
    "a", "b", "strong", "i", "em", "s", "strike", "del", "u", "ins", "tg-spoiler", "tg-emoji", "span", "pre", "code",
    "blockquote",
];

/// Decodes the HTML entity at `s[pos] == b'&'`: code point and the position after it.
pub(super) fn html_entity(s: &[u8], pos: usize) -> Option<(u32, usize)> {
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

pub(super) fn parse_html(s: &[u8], out: &mut Out) -> Result<(), String> {
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
