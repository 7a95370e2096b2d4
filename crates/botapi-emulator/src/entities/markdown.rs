//! The `MarkdownV2` and legacy `Markdown` parse modes, as TDLib parses them.

use super::{Open, Out, at, custom_emoji_id, ensure, is_space, link_kind, lossy, skip, slice};

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

pub(super) fn parse_markdown_v2(s: &[u8], out: &mut Out) -> Result<(), String> {
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

pub(super) fn parse_markdown(s: &[u8], out: &mut Out) -> Result<(), String> {
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
