//! Telegram's text limit: [`split_text`] cuts a text longer than [`MESSAGE_LIMIT`] into messages that fit, at
//! line ends where it can, else at spaces, else between characters. Length is counted as Telegram does: UTF-16
//! code units of the text after entity parsing. HTML tags and entities are parsed (a cut never falls inside a tag,
//! an entity or, where avoidable, an element); Markdown texts are measured as written, which is never shorter
//! than what Telegram counts.

use teloxide_core::types::ParseMode;

/// Telegram's limit on a message's text, in UTF-16 code units after entity parsing.
pub(crate) const MESSAGE_LIMIT: usize = 4096;

/// `text` as messages within `limit`, in order; one piece when it fits. Pieces of only whitespace are left out.
pub(crate) fn split_text(text: &str, limit: usize, mode: Option<ParseMode>) -> Vec<String> {
    let html = mode == Some(ParseMode::Html);
    let mut pieces = Vec::new();
    let mut rest = text;
    loop {
        let cut = cut_point(rest, limit, html);
        let (piece, tail) = rest.split_at(cut);
        if !piece.trim().is_empty() {
            pieces.push(piece.to_owned());
        }
        if tail.is_empty() {
            return pieces;
        }
        rest = tail;
    }
}

/// Where the first piece of `text` ends: its whole length when it fits, else the last line end, else the last
/// space (each only past half the limit), else the last character boundary that keeps it within `limit`.
fn cut_point(text: &str, limit: usize, html: bool) -> usize {
    let (mut visible, mut depth) = (0, 0usize);
    let (mut line, mut space, mut any) = (None, None, None);
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        if html && c == '<' {
            // A tag counts nothing; `</...>` closes an element.
            let closing = chars.peek().is_some_and(|(_, c)| *c == '/');
            let end = text[at..].find('>').map_or(text.len(), |i| at + i + 1);
            while chars.peek().is_some_and(|(i, _)| *i < end) {
                chars.next();
            }
            depth = if closing { depth.saturating_sub(1) } else { depth + 1 };
            if depth == 0 {
                any = Some(end);
            }
            continue;
        }
        let mut end = at + c.len_utf8();
        let units = if html
            && c == '&'
            && let Some(len) = entity_len(&text[at..])
        {
            end = at + len;
            while chars.peek().is_some_and(|(i, _)| *i < end) {
                chars.next();
            }
            1
        } else {
            c.len_utf16()
        };
        if visible + units > limit {
            return line.or(space).or(any).unwrap_or(at.max(c.len_utf8()));
        }
        visible += units;
        if depth == 0 || !html {
            any = Some(end);
            // A line end or space in the first half would leave a short piece: cut between characters instead.
            let far_enough = visible >= limit / 2;
            if far_enough && c == '\n' {
                line = Some(end);
            } else if far_enough && c.is_whitespace() {
                space = Some(end);
            }
        }
    }
    text.len()
}

/// The byte length of an HTML entity (`&amp;`, `&#33;`) at the start of `text`.
fn entity_len(text: &str) -> Option<usize> {
    let end = text[1..].find(';')? + 2;
    let name = &text[1..end - 1];
    let valid = (1..=10).contains(&name.len())
        && (name.bytes().all(|b| b.is_ascii_alphanumeric())
            || name.strip_prefix('#').is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric())));
    valid.then_some(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn units(piece: &str) -> usize {
        piece.encode_utf16().count()
    }

    #[test]
    fn a_text_that_fits_is_one_piece() {
        assert_eq!(split_text("hello", MESSAGE_LIMIT, None), ["hello"]);
        let exact = "ж".repeat(MESSAGE_LIMIT);
        assert_eq!(split_text(&exact, MESSAGE_LIMIT, None), [exact]);
    }

    #[test]
    fn lines_are_kept_whole_and_in_order() {
        let text: String = (0..1000).map(|i| format!("line {i}\n")).collect();
        let pieces = split_text(&text, MESSAGE_LIMIT, None);
        assert!(pieces.len() > 1);
        assert!(pieces.iter().all(|p| units(p) <= MESSAGE_LIMIT && p.ends_with('\n')));
        assert_eq!(pieces.concat(), text);
    }

    #[test]
    fn a_long_line_is_cut_at_spaces_then_between_characters_counting_utf16() {
        let words = "word ".repeat(1000);
        let pieces = split_text(&words, MESSAGE_LIMIT, None);
        assert!(pieces.iter().all(|p| units(p) <= MESSAGE_LIMIT && p.ends_with(' ')));
        assert_eq!(pieces.concat(), words);
        // An emoji is two UTF-16 units: 2100 of them are 4200 units, so two pieces.
        let emoji = "😀".repeat(2100);
        let pieces = split_text(&emoji, MESSAGE_LIMIT, None);
        assert_eq!(pieces.iter().map(|p| units(p)).collect::<Vec<_>>(), [4096, 104]);
        assert_eq!(pieces.concat(), emoji);
        // A space early on does not make a short first piece.
        let echo = format!("You said: {}", "é".repeat(4090));
        let pieces = split_text(&echo, MESSAGE_LIMIT, None);
        assert_eq!(pieces.iter().map(|p| units(p)).collect::<Vec<_>>(), [4096, 4]);
    }

    #[test]
    fn html_counts_text_only_and_never_cuts_inside_an_element() {
        // 4,000 visible characters in bold tags fit, although the markup is longer.
        let bold = format!("<b>{}</b>", "a".repeat(4000));
        assert_eq!(split_text(&bold, MESSAGE_LIMIT, Some(ParseMode::Html)).len(), 1);
        let entities = "&amp;".repeat(4000);
        assert_eq!(split_text(&entities, MESSAGE_LIMIT, Some(ParseMode::Html)).len(), 1);
        let text = format!("{}\n<b>bold\nstill bold</b> {}", "x".repeat(4080), "y".repeat(100));
        let pieces = split_text(&text, MESSAGE_LIMIT, Some(ParseMode::Html));
        assert_eq!(pieces, [format!("{}\n", "x".repeat(4080)), format!("<b>bold\nstill bold</b> {}", "y".repeat(100))]);
    }
}
